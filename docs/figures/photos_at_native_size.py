"""Before/after of scikit-image's bundled photographs, each edited at its own size.

    python docs/figures/photos_at_native_size.py --manipulators runs/demo \\
        --out docs/results/photos_at_native_size.png

Every manipulator of the run (or the artifact directories given) is applied, through the
augment job's row steps, to astronaut (512x512), chelsea (451x300), coffee (600x400),
rocket (640x427) and camera (512x512, grayscale); each panel is titled with the edited
image's width x height, which is its source's.
"""

from __future__ import annotations

import argparse
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from pipelines.augment import resolve_manipulators  # noqa: E402
from sdd.artifacts import load_manipulator  # noqa: E402
from sdd.augment import augment_rows  # noqa: E402
from sdd.io.images import decode_image  # noqa: E402

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera")


def photos_table() -> pa.Table:
    from skimage import data

    cells = []
    for name in PHOTOS:
        buf = io.BytesIO()
        pixels = getattr(data, name)()
        Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB").save(buf, "PNG")
        cells.append({"bytes": buf.getvalue(), "path": None})
    return pa.table({"id": list(range(len(PHOTOS))), "image": cells})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manipulators", nargs="+", required=True, help="run/registry or artifact URLs")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    artifacts = [load_manipulator(u) for u in resolve_manipulators(args.manipulators)]
    table = photos_table()
    out = augment_rows(table, artifacts, image_column="image", source_ids=table.column("id"), max_pixels=10**8)
    rows = [("source", [decode_image(c["bytes"]) for c in table.column("image").to_pylist()])]
    for artifact in artifacts:
        edited = {r["source_id"]: decode_image(r["edited_image"]["bytes"]) for r in out.to_pylist()
                  if r["manipulator_id"] == artifact.id}
        rows.append((artifact.manifest["prompt"], [edited[i] for i in range(len(PHOTOS))]))
    fig, axes = plt.subplots(len(rows), len(PHOTOS), figsize=(3 * len(PHOTOS), 2.6 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c, img in enumerate(images):
            ax = axes[r, c]
            ax.imshow(np.asarray(img))
            ax.set_title(f"{img.shape[1]}x{img.shape[0]}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=60)


if __name__ == "__main__":
    main()
