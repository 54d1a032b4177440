"""Evaluation, videos and their command lines, on a tiny checkpoint trained here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from equirl.agents.config import PPOConfig, RunConfig, TrainConfig
from equirl.cli import main
from equirl.envs.config import EnvConfig
from equirl.envs.task import END_REASONS
from equirl.errors import EquirlError
from equirl.nn.config import NetworkConfig
from helpers.common import REPO

EPISODE_LENGTH = 25
MJCF = REPO / "envs" / "hopper" / "hopper_4_lower_shin.xml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A two-iteration tiny-MLP PPO run on hopper_3_shin (limbs padded to 5)."""
    from equirl.agents.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    config = TrainConfig(
        algorithm="ppo",
        env=EnvConfig(bodies=("hopper_3_shin",), num_envs=4, max_limbs=5, episode_length=EPISODE_LENGTH),
        network=NetworkConfig(kind="mlp", mlp_hidden=(16, 16)),
        ppo=PPOConfig(rollout_length=8, epochs=1, minibatches=2),
        run=RunConfig(
            name="tiny",
            out_dir=str(out),
            total_steps=2 * 32,
            checkpoint_every_steps=32,
            keep_checkpoints=1,
            equivariance_every_steps=0,
            progress=False,
        ),
    )
    train(config)
    return out


@pytest.fixture(scope="module")
def policy(run_dir):
    from equirl.evaluation import load_policy_for_eval

    return load_policy_for_eval(run_dir)


def test_evaluate_two_bodies_and_uncontrollable_ones(policy, tmp_path):
    from equirl.evaluation import evaluate, format_table, write_outputs

    bodies = ["hopper_3_shin", str(MJCF), "walker_7_full", str(tmp_path / "missing.xml")]
    results = evaluate(policy, bodies, episodes=3, seeds=(0, 1), batch_size=2)
    assert [r.body for r in results] == [
        "hopper_3_shin",
        "hopper_4_lower_shin",
        "walker_7_full",
        str(tmp_path / "missing.xml"),
    ]
    for r in results[:2]:
        assert r.ok and r.episodes == 6 and len(r.returns) == 6
        assert np.isfinite(r.return_mean) and 1 <= r.length_mean <= EPISODE_LENGTH
        assert r.fell + r.time_limit + r.unstable == 6
        # Each fall names at least one broken health condition.
        assert set(r.fell_by) <= set(END_REASONS) and sum(r.fell_by.values()) >= r.fell
        assert r.padded_limbs == 5
    assert results[0].limbs == 3 and results[1].limbs == 4
    # Seeds draw different starts; batches of one seed repeat none of them.
    assert len(set(results[0].returns)) > 1
    # Bodies the checkpoint cannot control say why, in their own row.
    assert "7 limbs" in results[2].error and "mlp" in results[2].error
    assert "missing.xml" in results[3].error
    table = format_table(results)
    assert "NOT EVALUATED" in table and "hopper_4_lower_shin" in table
    csv_path, json_path = write_outputs(results, policy, bodies, tmp_path / "out")
    header = csv_path.read_text().splitlines()[0].split(",")
    assert {
        "body",
        "limbs",
        "return_mean",
        "return_std",
        "length_mean",
        "fell",
        "time_limit",
        "unstable",
        "error",
    } <= set(header)
    data = json.loads(json_path.read_text())
    assert len(data["results"]) == 4 and data["meta"]["max_limbs"] == 5
    assert data["results"][2]["return_mean"] is None  # NaN written as null
    assert data["results"][0]["fell_by"] == results[0].fell_by and "fell_by" in header


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio starts ffmpeg
def test_render_writes_a_real_video(policy, tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    from equirl.evaluation import render_video

    path = tmp_path / "videos" / "clip.mp4"
    result = render_video(policy, "hopper_3_shin", path, episode_length=12, width=96, height=96, gif=True)
    assert result.path == path and path.stat().st_size > 0 and result.gif.stat().st_size > 0
    # control runs at 125 steps/s; every 5th step is drawn, for 25 fps in real time
    assert result.fps == pytest.approx(1.0 / (0.002 * 4 * 5))
    frames = imageio.mimread(str(path))
    assert len(frames) == result.frames == len(range(0, result.length + 1, 5))
    frame = np.asarray(frames[len(frames) // 2])
    assert frame.shape[:2] == (96, 96)
    assert frame.reshape(-1, frame.shape[-1]).std(0).max() > 5  # not one colour
    every = render_video(
        policy, "hopper_3_shin", tmp_path / "all.mp4", episode_length=12, width=96, height=96, max_fps=1e3
    )
    assert every.frames == every.length + 1 and every.fps == pytest.approx(1.0 / (0.002 * 4))


def test_cli_eval_render_and_errors(run_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--run",
                str(run_dir),
                "--bodies",
                "hopper_3_shin",
                "--episodes",
                "2",
                "--episode-length",
                "10",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "hopper_3_shin" in printed and (out / "hopper_3_shin.csv").is_file() and (out / "hopper_3_shin.json").is_file()
    )

    # A missing checkpoint: one line, exit code 2.
    assert main(["eval", "--run", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("equirl: error:") and "nothing" in err and "\n" not in err
    # Only an unreadable body: the table says why, then one error line and exit code 2.
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body>")
    assert main(["eval", "--run", str(run_dir), "--bodies", str(bad), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "NOT EVALUATED" in captured.out and captured.err.count("\n") == 1 and "bad.xml" in captured.err
    # render: an unreadable body is an EquirlError, one line and exit code 2.
    assert main(["render", "--run", str(run_dir), "--body", str(bad), "--out", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("equirl: error:") and "bad.xml" in err and "\n" not in err
    from equirl.evaluation.render import render_video

    with pytest.raises(EquirlError, match="random:3:0"):
        render_video(run_dir, "random:3:0", tmp_path / "y.mp4")
