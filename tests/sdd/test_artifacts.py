"""Artifacts round-trip, refuse tampering, and live under safe, unique slugs."""

import json

import pytest
import torch

from sdd.artifacts import ArtifactError, Registry, load_manipulator, save_manipulator, slugify
from sdd.manipulators import ImageManipulator


def trained_manipulator(seed=0):
    torch.manual_seed(seed)
    m = ImageManipulator(width=16, depth=1)
    for p in m.parameters():
        p.data.normal_()
    return m


def assert_same_manipulator(loaded, original):
    """Bit-identical weights, and the same edits up to float summation order (the loader puts
    the convolutions in channels-last layout; 1e-4 is 1/80 of one 8-bit pixel level)."""
    mine, theirs = loaded.state_dict(), original.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded(x), original.eval()(x), rtol=0, atol=1e-4)


def test_round_trip(tmp_path):
    m = trained_manipulator()
    manifest = save_manipulator(str(tmp_path / "a"), m, prompt="a red object", timesteps=[200, 300],
                                teacher_id="shapes-teacher@x", metrics={"editability": 0.97})
    art = load_manipulator(str(tmp_path / "a"))
    assert_same_manipulator(art.manipulator, m)
    on_disk = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert on_disk == manifest
    for key in ("prompt", "slug", "architecture", "hyperparameters", "timesteps", "teacher_id", "metrics",
                "weights_sha256", "package_version", "created"):
        assert key in manifest
    assert art.id.startswith(manifest["slug"] + "@")


def test_tampered_weights_are_refused(tmp_path):
    save_manipulator(str(tmp_path / "a"), trained_manipulator(), prompt="a red object")
    weights = tmp_path / "a" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_manipulator(str(tmp_path / "a"))


def test_missing_artifact_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        load_manipulator(str(tmp_path / "nothing"))


@pytest.mark.parametrize("prompt", ["../../x", "a/b\\c", "x" * 500, "rouge écarlate 🔴", "", "..", "a red object"])
def test_slugs_are_safe(prompt):
    slug = slugify(prompt)
    assert slug and len(slug) <= 60 and slug.isascii()
    assert all(c.isalnum() or c == "-" for c in slug) and ".." not in slug and not slug.startswith("-")


def test_slugs_are_unique_for_prompts_that_sanitise_alike():
    assert slugify("a/red") != slugify("a red") != slugify("a-red")


def test_registry_lists_complete_artifacts_only(tmp_path):
    reg = Registry(str(tmp_path))
    assert reg.list() == []
    reg.save(trained_manipulator(0), prompt="a red object")
    reg.save(trained_manipulator(1), prompt="a blue object")
    partial = tmp_path / "manipulators" / "half-written"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"x")
    assert [m["prompt"] for m in reg.list()] == ["a blue object", "a red object"]
    assert reg.has("a red object") and not reg.has("a green object")
    assert reg.load("a red object").manifest["prompt"] == "a red object"
    with pytest.raises(ArtifactError, match="no manipulator for"):
        reg.load("a green object")


def test_registry_on_s3(s3_bucket):
    reg = Registry(f"{s3_bucket}/run")
    m = trained_manipulator()
    reg.save(m, prompt="a red object", timesteps=[300])
    (listed,) = reg.list()
    assert listed["url"].startswith("s3://") and listed["timesteps"] == [300]
    assert_same_manipulator(reg.load(listed["slug"]).manipulator, m)


def test_hostile_prompts_stay_inside_the_registry_and_round_trip(tmp_path):
    """Prompts are user input: path tricks, separators, length and non-ASCII become safe,
    distinct directory names under manipulators/, and the manifest keeps the prompt as given."""
    prompts = ["../../escape", "/etc/passwd", "a/b\\c", "x" * 500, "x" * 501, "rouge écarlate 🔴", ".."]
    reg = Registry(str(tmp_path / "run"))
    for i, prompt in enumerate(prompts):
        reg.save(trained_manipulator(i), prompt=prompt)
    root = (tmp_path / "run" / "manipulators").resolve()
    files = [p.resolve() for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(root in p.parents for p in files)
    assert len({p.parent for p in files}) == len(prompts)
    assert sorted(m["prompt"] for m in reg.list()) == sorted(prompts)
    assert reg.load("../../escape").manifest["prompt"] == "../../escape"


def test_edit_calls_the_manipulator_in_device_sized_chunks(tmp_path):
    """A 70-row block is edited in calls of at most 32 rows on CPU (the augment job's blocks
    are 256 rows, which run 1.7-2.9x slower per row in one call), with the same result."""
    m = trained_manipulator()
    save_manipulator(str(tmp_path / "a"), m, prompt="a red object")
    art = load_manipulator(str(tmp_path / "a"))
    calls = []
    art.manipulator.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    x = torch.rand(70, 3, 32, 32) * 2 - 1
    edited = art.edit(x)
    assert calls == [32, 32, 6]
    assert not edited.requires_grad
    torch.testing.assert_close(edited, m.eval()(x), rtol=0, atol=1e-4)
    calls.clear()
    art.edit(x, max_batch=100)
    assert calls == [70]
