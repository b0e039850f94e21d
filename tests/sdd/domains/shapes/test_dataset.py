"""`sdd data shapes` writes Parquet in the Hugging Face image convention, to any fsspec URL."""

import io

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sdd.cli import main
from sdd.domains.shapes.render import generate
from sdd.io.parquet_images import IMAGE_STRUCT


def test_cli_writes_parquet_that_datasets_reads_as_images(tmp_path):
    out = tmp_path / "shapes.parquet"
    main(["data", "shapes", "--n", "40", "--seed", "3", "--out", str(out)])
    table = pq.read_table(out)
    assert table.schema.field("image").type == IMAGE_STRUCT
    assert {"id", "caption", "shape", "color", "size", "background"} <= set(table.column_names)

    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert isinstance(ds.features["image"], datasets.Image)
    first = ds[0]["image"]
    assert isinstance(first, Image.Image) and first.size == (32, 32)
    # the stored pixels are exactly the generator's (PNG is lossless)
    expected = generate(40, seed=3).images
    assert np.array_equal(np.asarray(first.convert("RGB")), expected[0])
    assert ds[5]["caption"] == generate(40, seed=3).captions()[5]


def test_writes_to_s3(s3_bucket):
    import s3fs

    url = f"{s3_bucket}/data/shapes.parquet"
    main(["data", "shapes", "--n", "10", "--seed", "1", "--out", url])
    fs = s3fs.S3FileSystem()
    with fs.open(url, "rb") as f:
        table = pq.read_table(io.BytesIO(f.read()))
    assert table.num_rows == 10
    # atomic write: no temporary file left beside it
    assert fs.ls(f"{s3_bucket}/data") == [url[len("s3://"):]]


def test_rejects_an_empty_dataset(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["data", "shapes", "--n", "0", "--out", str(tmp_path / "x.parquet")])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err
