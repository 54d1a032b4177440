"""The command line and YAML configs: real runs, and one clear line for bad input."""

import pytest

from equirl.cli import main
from equirl.config_io import from_dict, load_yaml
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from helpers.common import REPO


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "env").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_env_configs_load_and_resolve(path):
    from equirl.envs.bodies import resolve

    config = load_yaml(EnvConfig, path)
    for entry in config.bodies:
        assert resolve(entry, max_limbs=config.max_limbs)  # every body fits the configured padding


def test_config_errors_name_the_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("bodies: [hopper]\nnum_envz: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown field\(s\) num_envz"):
        load_yaml(EnvConfig, bad)
    bad.write_text("bodies: [hopper]\nnum_envs: -3\n")
    with pytest.raises(ConfigError, match="bad.yaml: num_envs=-3"):
        load_yaml(EnvConfig, bad)
    bad.write_text("bodies: [hopper\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(EnvConfig, bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_yaml(EnvConfig, tmp_path / "missing.yaml")
    assert from_dict(EnvConfig, {"bodies": ["walker_7_full"]}).bodies == ("walker_7_full",)


@pytest.mark.benchmark  # ~25 s of compiles over 23 bodies; kept out of the default suite's 10 minutes
def test_demo_runs_a_mixed_batch(capsys):
    assert (
        main(["demo", "--bodies", "hopper_3_shin", "walker_2_right_leg_left_knee", "--envs", "4", "--steps", "30"]) == 0
    )
    out = capsys.readouterr().out
    assert "2 bodies, 4 environments" in out and "hopper_3_shin" in out and "walker_2_right_leg_left_knee" in out


def test_user_errors_are_one_line(capsys, tmp_path):
    assert main(["inspect", str(tmp_path / "none.xml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.xml: no such MJCF file" in err
    assert main(["demo", "--bodies", "walker_99", "--envs", "2"]) == 2
    assert "'walker_99'" in capsys.readouterr().err


def test_inspect_and_bodies(capsys):
    from helpers.common import gymnasium_ant

    assert main(["inspect", str(gymnasium_ant())]) == 0
    assert "9 limbs, 8 driven hinges" in capsys.readouterr().out
    assert main(["bodies"]) == 0
    out = capsys.readouterr().out
    assert "CWHH (23)" in out and "walker_6_right_foot" in out
