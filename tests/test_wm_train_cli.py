"""`equirl wm collect | train | eval` end to end on a tiny dataset, resume, configs, errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import jax.numpy as jnp
import pytest

from equirl.cli import main
from equirl.config_io import load_yaml
from equirl.worldmodels.config import WMTrainConfig, load_wm_config
from equirl.worldmodels.data import CollectConfig
from equirl.worldmodels.interface import KINDS
from helpers.wm import tiny_dataset

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--set",
    "data.window=6",
    "--set",
    "data.batch_size=4",
    "--set",
    "model.context=3",
    "--set",
    "model.width=8",
    "--set",
    "model.vector_channels=4",
    "--set",
    "run.eval_windows=4",
    "--set",
    "run.log_every=1",
    "--set",
    "run.checkpoint_every=2",
    "--set",
    "run.progress=false",
    "--set",
    "optim.warmup_steps=1",
]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("wm") / "gru"
    code = main(
        [
            "wm",
            "train",
            "--config",
            str(REPO / "configs/wm/gru.yaml"),
            "--data",
            str(tiny_dataset()),
            "--out",
            str(out),
            "--steps",
            "4",
            *TINY,
        ]
    )
    assert code == 0
    return out


def test_train_writes_a_run_directory(gru_run):
    for name in ("config.yaml", "stats.json", "metrics.csv"):
        assert (gru_run / name).is_file()
    assert list(gru_run.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (gru_run / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
    rows = _rows(gru_run / "metrics.csv")
    assert [int(float(r["step"])) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["test/total"]) > 0 for r in rows)


def test_resume_repeats_the_uninterrupted_run(gru_run, capsys):
    before = _rows(gru_run / "metrics.csv")
    shutil.rmtree(gru_run / "checkpoints" / "4")  # as if killed after the checkpoint at step 2
    assert main(["wm", "train", "--out", str(gru_run), "--resume"]) == 0
    after = _rows(gru_run / "metrics.csv")
    assert [int(float(r["step"])) for r in after] == [1, 2, 3, 4]
    for a, b in zip(before[2:], after[2:]):
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
        assert float(a["test/total"]) == pytest.approx(float(b["test/total"]), rel=1e-5)
    assert (
        main(
            [
                "wm",
                "train",
                "--config",
                str(REPO / "configs/wm/gru.yaml"),
                "--data",
                str(tiny_dataset()),
                "--out",
                str(gru_run),
                "--steps",
                "4",
                *TINY,
            ]
        )
        == 2
    )
    assert "already holds checkpoints" in capsys.readouterr().err


def test_eval_writes_kstep_and_equivariance(gru_run, tmp_path, capsys):
    assert (
        main(
            [
                "wm",
                "eval",
                "--run",
                str(gru_run),
                "--ks",
                "1,2",
                "--flows",
                "yaw:0.785",
                "--windows",
                "4",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "wm_eval.json").read_text())
    assert report["kind"] == "gru" and report["ks"] == [1, 2]
    assert [row["flow"] for row in report["kstep"]] == ["none", "yaw_0.785"]
    assert all(row["z_2"] > 0 and row["position_m_2"] > 0 for row in report["kstep"])
    # the GRU has no symmetry built in (3 steps from a zero readout: nearly a copy of the last frame)
    assert report["equivariance"]["flow_yaw_0.785"] > 1e-2 and report["equivariance"]["static_finite"] > 1e-4
    assert (tmp_path / "wm_eval.csv").is_file()
    assert "z@1" in capsys.readouterr().out


def test_runs_shorter_than_the_warmup_have_a_schedule():
    from equirl.worldmodels.config import WMOptimConfig
    from equirl.worldmodels.train import optimizer

    for steps in (1, 2, 20):
        config = WMTrainConfig(optim=WMOptimConfig(steps=steps, warmup_steps=50))
        opt = optimizer(config)
        state = opt.init({"w": jnp.ones(2)})
        updates, _ = opt.update({"w": jnp.ones(2)}, state, {"w": jnp.ones(2)})
        assert bool(jnp.all(jnp.isfinite(updates["w"])))


def test_every_config_in_configs_wm_is_valid():
    folder = REPO / "configs" / "wm"
    kinds = set()
    for path in folder.glob("*.yaml"):
        if path.name.startswith("collect"):
            load_yaml(CollectConfig, path)
        else:
            config = load_wm_config(path)
            assert isinstance(config, WMTrainConfig)
            kinds.add(config.model.kind)
    assert kinds == set(KINDS)


def test_bad_input_is_one_line(tmp_path, capsys):
    cases = [
        (["wm", "train", "--config", str(tmp_path / "missing.yaml")], "no such config file"),
        (
            ["wm", "train", "--config", str(REPO / "configs/wm/gru.yaml"), "--set", "model.kind=lstm"],
            "model.kind='lstm'",
        ),
        (
            ["wm", "train", "--config", str(REPO / "configs/wm/gru.yaml"), "--set", "model.context=16"],
            "model.context=16",
        ),
        (
            [
                "wm",
                "train",
                "--config",
                str(REPO / "configs/wm/gru.yaml"),
                "--data",
                str(tmp_path / "nodata"),
                "--out",
                str(tmp_path / "run"),
            ],
            "not a world-model dataset",
        ),
        (["wm", "eval", "--run", str(tmp_path)], "not a world-model run directory"),
        (["wm", "collect", "--steps", "0", "--out", str(tmp_path / "d")], "collect.steps=0"),
        (["wm", "eval", "--run", str(tmp_path), "--flows", "spin:3"], "spin:3"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)


def test_a_checkpoint_of_the_old_format_is_refused_naming_the_change(tmp_path, monkeypatch, capsys):
    import equirl.worldmodels.train as wm_train

    old = tmp_path / "old"
    argv = ["wm", "train", "--config", str(REPO / "configs/wm/gru.yaml"), "--data", str(tiny_dataset())]
    with monkeypatch.context() as patch:  # a run saved as before the parity change
        patch.setattr(wm_train, "WM_CHECKPOINT_FORMAT", 1)
        assert main([*argv, "--out", str(old), "--steps", "2", *TINY]) == 0
    capsys.readouterr()
    for argv in (["wm", "train", "--out", str(old), "--resume"], ["wm", "eval", "--run", str(old), "--ks", "1"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "checkpoint format 1" in err and "physical parity" in err and "Traceback" not in err, (argv, err)
