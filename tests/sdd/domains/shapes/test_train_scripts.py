"""The training scripts are reproducible and resume exactly where they stopped."""

import json

from safetensors.torch import load_file

from sdd.domains.shapes import train_teacher


def test_teacher_training_resumes_to_the_same_weights(tmp_path):
    args = ["--steps", "4", "--batch-size", "4", "--checkpoint-every", "2", "--threads", "1", "--stages", "base"]
    train_teacher.main(["--out", str(tmp_path / "whole"), *args])

    # stop after 2 steps (a checkpoint), then run again to 4: it resumes, not restarts
    recipe = dict(train_teacher.RECIPE, steps=4, batch_size=4, stage="base")
    half = tmp_path / "resumed"
    train_teacher.train(half, dict(recipe), checkpoint_every=2, threads=1, stop_after=2)
    assert json.loads((half / "checkpoint" / "state.json").read_text())["step"] == 2
    assert not (half / "model.safetensors").exists()
    train_teacher.main(["--out", str(half), *args])

    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(half / "model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] - b[k]).abs().max() < 1e-6 for k in a)
    config = json.loads((half / "config.json").read_text())
    assert config["training"]["steps"] == 4 and config["unet"]["block_out_channels"] == [32, 64, 64]


def test_teacher_stages_run_in_order_each_from_the_last(tmp_path):
    args = ["--steps", "2", "--batch-size", "4", "--threads", "1", "--work", str(tmp_path / "work")]
    train_teacher.main(["--out", str(tmp_path / "final"), *args])
    base = load_file(tmp_path / "work" / "base" / "model.safetensors")
    final = load_file(tmp_path / "final" / "model.safetensors")
    assert base.keys() == final.keys() and any((base[k] - final[k]).abs().max() > 0 for k in base)
    config = json.loads((tmp_path / "final" / "config.json").read_text())
    assert config["training"]["stage"] == "partial" and config["training"]["captions"] == "subsets"
    assert [s["training"]["stage"] for s in config["earlier_stages"]] == ["base"]

    # a second stage alone starts from the weights it is given, not from scratch
    train_teacher.main(["--out", str(tmp_path / "again"), "--stages", "partial", "--init",
                        str(tmp_path / "work" / "base"), *args])
    again = load_file(tmp_path / "again" / "model.safetensors")
    assert all((again[k] - final[k]).abs().max() < 1e-6 for k in final)
