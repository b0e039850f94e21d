"""Image codecs alone on real photographs: milliseconds per image and bytes, per setting.

    python benchmarks/bench_codecs.py [--repeats 5]

scikit-image's bundled photographs (astronaut, chelsea, coffee, rocket, camera), decoded
once; each output setting (PNG at zlib levels 0, 1, 3, 6; JPEG and WebP at quality 95)
encodes every photo ``--repeats`` times on one thread. When the manipulator is cheap the
codec is the augment job's limit; this is what picks the PNG level ``sdd.io.images`` uses.
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import parser, report, setup  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")
SETTINGS = [("png", {"compress_level": 0}), ("png", {"compress_level": 1}), ("png", {"compress_level": 3}),
            ("png", {"compress_level": 6}), ("jpeg", {"quality": 95}), ("webp", {"quality": 95})]


def main() -> None:
    p = parser(__doc__)
    args = p.parse_args()
    setup(args)
    from PIL import Image
    from skimage import data

    images = [Image.fromarray(getattr(data, n)()).convert("RGB") for n in PHOTOS]
    result = {}
    for fmt, options in SETTINGS:
        name = fmt + "".join(f"_{k}{v}" for k, v in options.items())
        times, size = [], 0
        for _ in range(args.repeats):
            start = time.perf_counter()
            size = 0
            for img in images:
                buf = io.BytesIO()
                img.save(buf, fmt.upper(), **options)
                size += buf.tell()
            times.append((time.perf_counter() - start) / len(images))
        result[f"{name}_ms"] = round(1000 * statistics.median(times), 1)
        result[f"{name}_kib"] = round(size / len(images) / 1024)
    report("bench_codecs", result, args)


if __name__ == "__main__":
    main()
