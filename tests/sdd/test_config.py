"""Configs are validated at the edge: clear messages, before any work."""

import pytest

from sdd.config import ConfigError, DistillSettings, load_config, parse_config
from sdd.domains.shapes.edits import RECOLOUR_PROMPTS


def test_defaults_are_the_shapes_world_and_its_six_recolour_prompts():
    config = load_config(None)
    assert config.teacher == "shapes" and config.sources == "shapes"
    assert config.prompts == list(RECOLOUR_PROMPTS) and len(config.prompts) == 6
    assert config.select.grid()[0] == 100 and config.select.grid()[-1] == 900


@pytest.mark.parametrize("data, message", [
    ({"promts": ["a red object"]}, "promts: Extra inputs are not permitted"),
    ({"distill": {"steps": "many"}}, "distill.steps"),
    ({"distill": {"timestep_policy": "sometimes"}}, "unknown timestep policy"),
    ({"distill": {"weighting": "snr"}}, "unknown weighting"),
    ({"distill": {"estimator": "csd"}}, "estimator"),
    ({"distill": {"manipulator": {"architecture": "image_residual", "grid": 2}}}, "image_residual architecture takes no option 'grid'"),
    ({"distill": {"manipulator": {"architecture": "mask_blend", "depth": 3}}}, "takes no option 'depth'"),
    ({"distill": {"manipulator": {"architecture": "unet9"}}}, "unknown architecture 'unet9'"),
    ({"select": {"policy": "max"}}, "unknown selection policy"),
    ({"select": {"draws": 1}}, "select.draws"),
    ({"select": {"timesteps": {"start": 900, "stop": 100}}}, "must not exceed"),
    ({"prompts": []}, "at least one prompt"),
    ({"prompts": ["a", "a"]}, "duplicate prompts"),
])
def test_bad_configs_name_the_field(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data, "test.yaml")


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("prompts: [a red object]\ndistill:\n  steps: 7\n")
    config = load_config(str(path), run_dir="runs/x")
    assert config.prompts == ["a red object"] and config.distill.steps == 7 and config.run_dir == "runs/x"


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(tmp_path / "list.yaml"))


def test_job_defaults_are_the_methods_defaults():
    """One source of defaults: the job's distill section builds exactly DistillConfig's own."""
    from sdd.distill import DistillConfig

    settings = DistillSettings()
    built = settings.recipe(["a red object"], {"a red object": [300]})
    assert built == DistillConfig(prompts=["a red object"], selected_timesteps={"a red object": [300]})


def test_job_overrides_reach_the_method():
    settings = DistillSettings(steps=7, guidance_scale=4.5, manipulator={"architecture": "image_residual", "width": 8})
    built = settings.recipe(["a red object"], {"a red object": [300]})
    assert (built.steps, built.guidance_scale) == (7, 4.5)
    assert built.manipulator == {"architecture": "image_residual", "width": 8}


def test_every_method_setting_can_be_set_from_a_job_config():
    from sdd.config import RECIPE

    assert set(RECIPE) - {"selected_timesteps"} <= set(DistillSettings.model_fields)
