"""`sdd teacher sample` and `sdd samples` write what they promise."""

import datasets
import numpy as np
from PIL import Image

from sdd.cli import main


def test_teacher_sample_writes_parquet_and_a_grid(tmp_path):
    out = tmp_path / "samples.parquet"
    main(["teacher", "sample", "--prompt", "a red object", "--prompt", "a blue object", "--n", "3",
          "--steps", "10", "--seed", "1", "--out", str(out)])
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert ds["prompt"] == ["a red object"] * 3 + ["a blue object"] * 3
    assert ds[0]["image"].size == (32, 32) and ds[0]["teacher_id"].startswith("shapes-teacher@")
    grid = np.asarray(Image.open(tmp_path / "samples.png"))
    assert grid.shape[0] < grid.shape[1]  # two rows of three


def test_teacher_sample_rejects_words_outside_the_vocabulary(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["teacher", "sample", "--prompt", "a red dog", "--out", str(tmp_path / "x.parquet")])
    assert "outside this teacher's vocabulary" in capsys.readouterr().err


def test_samples_writes_a_dataset_and_a_grid(tmp_path):
    main(["samples", "--out", str(tmp_path), "--n", "20", "--per-prompt", "2", "--steps", "10"])
    assert (tmp_path / "shapes.parquet").is_file() and (tmp_path / "teacher_samples.png").is_file()
