"""Training sources from a Parquet dataset: crops at the teacher's size, aspect kept, seeded."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from builders import photo_table
from sdd.sources import ParquetSources


def test_parquet_sources_are_seeded_crops_of_each_photo_at_the_teachers_size(tmp_path):
    table = photo_table(["chelsea", "rocket"])  # 451x300 and 640x427: neither square
    cells = table.column("image").to_pylist() + [{"bytes": b"broken", "path": None}]
    pq.write_table(pa.table({"image": pa.array(cells, table.schema.field("image").type)}), tmp_path / "p.parquet")
    sources = ParquetSources(str(tmp_path / "p.parquet"), size=64)
    assert len(sources) == 2  # the broken row is skipped
    # scaled so the shorter side is 64, the aspect ratio kept (never squashed to a square)
    assert [img.shape for img in sources.images] == [(64, 96, 3), (64, 96, 3)]
    a = sources(np.random.default_rng(0), 16)
    b = sources(np.random.default_rng(0), 16)
    assert a.shape == (16, 3, 64, 64) and a.min() >= -1 and a.max() <= 1
    assert np.array_equal(a.numpy(), b.numpy())
    assert len({x.numpy().tobytes() for x in a}) > 2  # crops at different positions


def test_parquet_sources_without_a_decodable_image_say_so(tmp_path):
    pq.write_table(pa.table({"image": [b"junk"]}), tmp_path / "p.parquet")
    with pytest.raises(ValueError, match="no decodable images"):
        ParquetSources(str(tmp_path / "p.parquet"), size=32)
