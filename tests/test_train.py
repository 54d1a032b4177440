"""The training driver: logs, checkpoints, and resuming that loses nothing.

Every run here uses one tiny PPO config; `train` is given a build that is
made once per module, so the iteration compiles once for all in-process runs
(the SIGKILL test's subprocess compiles its own).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

from equirl.agents import train as T
from equirl.agents.config import TrainConfig
from equirl.agents.saved_runs import checkpoint_meta
from equirl.cli import main
from equirl.config_io import load_yaml, to_dict
from equirl.envs.task import END_REASONS
from equirl.errors import ConfigError
from equirl.nn.config import NetworkConfig
from equirl.runs import checkpoints
from equirl.runs.checkpoints import CHECKPOINTS
from helpers.common import REPO
from helpers.launch import assert_same_losses, finish, launch_two_devices, launch_two_processes
from helpers.runs import (
    ITERATIONS,
    STEPS_PER_ITERATION,
    checkpoint_steps,
    load_checkpoint,
    read_csv,
    sac_config,
    tiny_config,
)


@pytest.fixture(scope="module", autouse=True)
def shared_build():
    """`build` made once per config (ignoring run bookkeeping), so the iteration compiles once."""
    cache = {}
    real_build = T.build

    def build(config, mesh=None):
        key = json.dumps(dict(to_dict(config), run=None), sort_keys=True)
        if key not in cache:
            env, networks, agent = real_build(config, mesh)
            env.close, env.real_close = (lambda: None), env.close  # closed at module teardown
            cache[key] = (env, networks, agent)
        return cache[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(T, "build", build)
        yield
    for env, _, _ in cache.values():
        env.real_close()


def params_of(state):
    return jax.tree.leaves(jax.device_get(state.params))


def assert_same_params(a, b, atol=0.0):
    for x, y in zip(params_of(a), params_of(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=0, atol=atol)


def event_tags(run_dir) -> dict[str, list[int]]:
    """tag -> steps of every scalar in the run's TensorBoard event files (TFRecord framing)."""
    from tensorboardX.proto.event_pb2 import Event

    tags: dict[str, list[int]] = {}
    for path in sorted(run_dir.glob("events.out.tfevents*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.fixture(scope="module")
def straight_run(request, tmp_path_factory):
    """ITERATIONS iterations without interruption: the reference the other tests compare with."""
    selected = " ".join(item.name for item in request.session.items)
    # Start the subprocesses now: their compiles overlap this one.
    for test, fixture in (
        ("test_resume_after_sigkill", "killed_run"),
        ("test_two_devices", "two_device_job"),
        ("test_two_processes", "two_process_job"),
    ):
        if test in selected:
            request.getfixturevalue(fixture)
    out = tmp_path_factory.mktemp("straight")
    config = tiny_config(out)
    return config, T.train(config)


def test_a_short_run_writes_config_logs_and_checkpoints(straight_run):
    config, result = straight_run
    run_dir = result.run_dir
    assert load_yaml(TrainConfig, run_dir / "config.yaml") == config
    assert int(result.state.env_steps) == ITERATIONS * STEPS_PER_ITERATION
    assert int(result.state.iteration) == ITERATIONS

    rows = read_csv(run_dir)
    assert [int(r["env_steps"]) for r in rows] == [STEPS_PER_ITERATION * (i + 1) for i in range(ITERATIONS)]
    assert {
        "wall_seconds",
        "steps_per_second",
        "return/mean",
        "loss/policy",
        "loss/value",
        "policy/entropy",
        "policy/approx_kl",
        "return/hopper_3_shin",
        "equivariance/policy",
    } <= set(rows[0])
    assert len(result.history) == ITERATIONS and result.history[-1]["env_steps"] == ITERATIONS * STEPS_PER_ITERATION
    # The probe ran every 2 iterations and gave a number.
    # Why episodes ended: one share per reason (an episode may have several) or the time limit.
    ends = [f"ends/{name}" for name in END_REASONS + ("time_limit",)]
    assert set(ends) <= set(rows[0])
    for r in rows:
        if float(r["episodes"]):
            shares = np.array([float(r[c]) for c in ends])
            assert np.all((shares >= 0) & (shares <= 1)) and shares.sum() >= 1 - 1e-6
    probed = [r["equivariance/policy"] for r in rows]
    assert probed[0] == "" and np.isfinite(float(probed[1])) and np.isfinite(float(probed[3]))

    tags = event_tags(run_dir)
    for tag in ("loss/policy", "policy/entropy", "time/steps_per_second", "equivariance/policy"):
        assert tag in tags, tag
    assert tags["loss/policy"] == [STEPS_PER_ITERATION * (i + 1) for i in range(ITERATIONS)]
    if any(float(r["episodes"]) for r in rows):  # a 3-limb hopper falls within 32 steps
        assert "return/hopper_3_shin" in tags and "return/mean" in tags

    # Only the newest keep_checkpoints=2 are kept.
    assert checkpoint_steps(run_dir) == [3 * STEPS_PER_ITERATION, 4 * STEPS_PER_ITERATION]
    saved_config, saved = load_checkpoint(run_dir)
    assert saved_config == config
    assert int(saved.env_steps) == ITERATIONS * STEPS_PER_ITERATION
    assert_same_params(saved, result.state)

    # A second fresh run into the same directory would mix two runs: refused.
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        T.train(config)


def test_resumed_training_equals_uninterrupted_training(straight_run, tmp_path, capsys):
    config, reference = straight_run
    half = ITERATIONS // 2
    stopped = T.train(tiny_config(tmp_path), callback=lambda state, row: row["iteration"] == half)
    assert int(stopped.state.iteration) == half
    assert checkpoint_steps(tmp_path)[-1] == half * STEPS_PER_ITERATION

    resumed = T.train(tiny_config(tmp_path), resume=True)
    assert f"at {half * STEPS_PER_ITERATION} environment steps" in capsys.readouterr().err
    assert [row["iteration"] for row in resumed.history] == list(range(half + 1, ITERATIONS + 1))
    assert_same_params(resumed.state, reference.state, atol=1e-6)
    assert int(resumed.state.env_steps) == int(reference.state.env_steps)
    # The log reads as one run.
    expected = [STEPS_PER_ITERATION * (i + 1) for i in range(ITERATIONS)]
    assert [int(r["env_steps"]) for r in read_csv(tmp_path)] == expected


def test_ctrl_c_saves_the_last_finished_iteration(tmp_path, capsys):
    def interrupt(state, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        T.train(tiny_config(tmp_path, checkpoint_every_steps=10 * STEPS_PER_ITERATION), callback=interrupt)
    assert checkpoint_steps(tmp_path) == [STEPS_PER_ITERATION]
    assert "interrupted; saved a checkpoint at 32 environment steps" in capsys.readouterr().err


def test_resume_refuses_a_config_that_changes_shapes(straight_run, tmp_path):
    config, _ = straight_run
    shutil.copytree(config.run.directory, tmp_path / "run")
    changed = dataclasses.replace(tiny_config(tmp_path / "run"), network=NetworkConfig(kind="mlp", mlp_hidden=(8, 8)))
    with pytest.raises(ConfigError, match=r"cannot resume.*network.mlp_hidden"):
        T.train(changed, resume=True)


# Orbax's failed read leaves coroutines behind that complain when they are collected, often in a
# later test; pyproject.toml's filterwarnings names them.
def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous(straight_run, tmp_path, capsys):
    config, reference = straight_run
    run_dir = tmp_path / "run"
    shutil.copytree(config.run.directory, run_dir)
    newest = run_dir / CHECKPOINTS / str(ITERATIONS * STEPS_PER_ITERATION)
    damaged = [p for p in (newest / "state").rglob("*") if p.is_file() and "ocdbt.process_0/d/" in str(p)]
    assert damaged
    for path in damaged:  # as a full disk or a killed copy would leave them
        path.write_bytes(path.read_bytes()[:10])

    _, state = load_checkpoint(run_dir)
    err = capsys.readouterr().err
    assert f"checkpoint {newest} is unreadable" in err and "using the previous one" in err
    assert int(state.env_steps) == (ITERATIONS - 1) * STEPS_PER_ITERATION

    # Resuming redoes the lost iteration and arrives where the straight run did.
    resumed = T.train(tiny_config(run_dir), resume=True)
    assert_same_params(resumed.state, reference.state, atol=1e-6)
    assert checkpoint_steps(run_dir)[-1] == ITERATIONS * STEPS_PER_ITERATION


@pytest.mark.parametrize("version", [None, 3])
def test_a_checkpoint_of_another_format_is_refused_by_name(straight_run, tmp_path, version):
    config, reference = straight_run
    manager = checkpoints.open_manager(tmp_path, keep=1)
    # Saved as formats before 4 were: the environment's info included.
    checkpoints.save(manager, 32, reference.state, checkpoint_meta(config, {"iteration": 1}))
    manager.close()
    meta_file = next((tmp_path / CHECKPOINTS / "32").glob("meta/*"))
    meta = json.loads(meta_file.read_text())
    meta.pop("format")  # as written before formats were numbered
    if version is not None:
        meta["format"] = version
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=f"checkpoint format {version or 1}, this equirl reads format 4") as err:
        load_checkpoint(tmp_path)
    assert "format 4 leaves the environment's info out" in str(err.value)


def test_checkpoints_leave_the_environment_info_out(straight_run):
    _, reference = straight_run
    run_dir = reference.run_dir
    stored = next((run_dir / CHECKPOINTS).glob("*/state/_METADATA"))
    assert "final_obs" not in stored.read_text() and "episode_return" in stored.read_text()
    _, restored = load_checkpoint(run_dir)
    assert set(restored.env_state.info) == set(reference.state.env_state.info)  # rebuilt, as zeros
    assert_same_params(restored, reference.state)


SIGKILL_ITERATIONS = 400


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """A real `python -m equirl train` process, SIGKILLed once it has saved 2 checkpoints.

    Started with `straight_run` so that its compile overlaps that one; a
    watcher thread kills it as soon as the checkpoints are there.
    """
    root = tmp_path_factory.mktemp("killed")
    config_path, run_dir = root / "tiny.yaml", root / "run"
    config = tiny_config(
        run_dir, total_steps=SIGKILL_ITERATIONS * STEPS_PER_ITERATION, equivariance_every_steps=0, keep_checkpoints=3
    )
    config_path.write_text(yaml.safe_dump(to_dict(config)))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(
        [sys.executable, "-m", "equirl", "train", "--config", str(config_path)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    outcome = {}

    def watch():
        deadline = time.monotonic() + 300
        while len(checkpoint_steps(run_dir)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        outcome["running_when_killed"] = process.poll() is None
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        outcome["returncode"] = process.wait()
        outcome["stderr"] = process.stderr.read().decode(errors="replace")

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield config_path, run_dir, watcher, outcome
    finally:
        if process.poll() is None:
            process.kill()
        watcher.join(30)
        process.stderr.close()


def test_resume_after_sigkill_loses_only_the_steps_since_the_last_checkpoint(killed_run, monkeypatch, capsys):
    config_path, run_dir, watcher, outcome = killed_run
    watcher.join(320)
    assert outcome.get("running_when_killed"), outcome.get("stderr", "")[-2000:]
    assert outcome["returncode"] == -signal.SIGKILL

    total = SIGKILL_ITERATIONS * STEPS_PER_ITERATION
    last = checkpoint_steps(run_dir)[-1]
    assert STEPS_PER_ITERATION <= last < total
    _, saved = load_checkpoint(run_dir)
    assert int(saved.env_steps) == last

    restored = []
    real_restore = checkpoints.restore_latest

    def spy(*args, **kwargs):
        restored.append(real_restore(*args, **kwargs))
        return restored[-1]

    monkeypatch.setattr(checkpoints, "restore_latest", spy)
    assert main(["train", "--config", str(config_path), "--resume", "--set", "run.checkpoint_every_steps=100000"]) == 0
    assert f"from its checkpoint at {last} environment steps" in capsys.readouterr().err
    state, _, step = restored[0]
    assert step == last and int(state.env_steps) == last
    assert_same_params(state, saved)

    _, final = load_checkpoint(run_dir)
    assert int(final.env_steps) == total and int(final.iteration) == SIGKILL_ITERATIONS
    steps = [int(r["env_steps"]) for r in read_csv(run_dir)]
    assert steps == [STEPS_PER_ITERATION * (i + 1) for i in range(SIGKILL_ITERATIONS)]  # cut at `last`, then continued


def test_offpolicy_needs_squashed_actions_and_holds_its_state_in_arrays(tmp_path):
    with pytest.raises(ConfigError, match="network.squash=false: sac needs a tanh-squashed actor"):
        dataclasses.replace(sac_config(tmp_path), network=NetworkConfig(kind="mlp"))
    config = sac_config(tmp_path)
    env, networks, agent = T.build(config)
    env.close()
    assert networks.actor.config.squash
    assert agent.steps_per_iteration == config.env.num_envs * config.offpolicy.steps_per_iteration
    # The whole state, replay buffer included, is arrays a checkpoint can hold.
    shapes = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    assert all(hasattr(leaf, "shape") for leaf in jax.tree.leaves(shapes))


@pytest.mark.benchmark  # its own compile takes about a minute on 2 cores: not run by default
def test_sac_trains_and_resumes(tmp_path):
    config = sac_config(tmp_path)
    stopped = T.train(config, callback=lambda state, row: row["iteration"] == 4)
    assert int(stopped.state.env_steps) == 16
    resumed = T.train(config, resume=True)
    assert int(resumed.state.env_steps) == 32
    assert [int(r["env_steps"]) for r in read_csv(tmp_path)] == [16, 32]


# --- data parallel: 2 devices, 2 processes (see tests/test_distributed.py) ---------------------

# Per-iteration figures that must not depend on the device count (clip_fraction, a
# count of ratios past a threshold, could flip on a rounding difference).
PPO_LOSSES = (
    "loss/policy",
    "loss/value",
    "policy/entropy",
    "policy/approx_kl",
    "optim/grad_norm",
    "value/mean",
    "reward/mean",
)


def columns(rows, keys=PPO_LOSSES) -> dict[str, list[float]]:
    """rows (history dicts or CSV rows) -> {key: values per iteration}."""
    return {key: [float(row[key]) for row in rows] for key in keys}


@pytest.fixture(scope="module")
def two_device_job(tmp_path_factory):
    """The PPO job of tests/test_distributed.py on 2 devices: tiny_config, stopped and resumed."""
    out = tmp_path_factory.mktemp("two_devices")
    process = launch_two_devices("ppo", out)
    yield out, process
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def two_process_job(tmp_path_factory):
    """tiny_config trained by `equirl train` as two processes of one run (1 device each)."""
    root = tmp_path_factory.mktemp("two_processes")
    config = tiny_config(root / "run")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(config)))
    processes = launch_two_processes(config_path, root)
    yield config, processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_two_devices_train_like_one(straight_run, two_device_job):
    _, reference = straight_run
    out, process = two_device_job
    code, _, err = finish(process)
    assert code == 0, err[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["env_devices"] == 2 and "envs" in result["env_sharding"]

    # Stopped after 2 iterations, resumed from its sharded checkpoint: one run of 4 iterations,
    # with the losses of the 1-device run.
    history = result["history"]
    assert [row["iteration"] for row in history] == list(range(1, ITERATIONS + 1))
    worst = assert_same_losses(columns(history), columns(reference.history), PPO_LOSSES)
    print("PPO, 2 devices vs 1, largest (absolute, relative) difference:", worst)
    for mine, theirs in zip(result["params"], params_of(reference.state), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-4)

    errors = result["errors"]
    assert "env.num_envs=3: must be divisible by the number of devices (2)" in errors["num_envs"]
    assert "ppo.minibatches)=1: must be divisible by the number of devices (2)" in errors["minibatch"]
    assert "offpolicy.batch_size=15: must be divisible" in errors["batch_size"]
    assert "offpolicy.buffer_size=255: must be divisible" in errors["buffer_size"]


def test_two_processes_train_like_one(straight_run, two_process_job):
    _, reference = straight_run
    config, processes = two_process_job
    (code0, out0, err0), (code1, out1, err1) = [finish(p) for p in processes]
    assert code0 == 0, err0[-3000:]
    assert code1 == 0, err1[-3000:]
    assert "training on 2 cpu devices in 2 processes, 2 environments per device" in err0
    assert "training on" not in err1  # process 1 computes and says nothing

    run_dir = Path(config.run.directory)
    rows = read_csv(run_dir)  # written once, by process 0
    assert [int(r["env_steps"]) for r in rows] == [STEPS_PER_ITERATION * (i + 1) for i in range(ITERATIONS)]
    assert len(list(run_dir.glob("events.out.tfevents*"))) == 1
    worst = assert_same_losses(columns(rows), columns(reference.history), PPO_LOSSES)
    print("PPO, 2 processes vs 1, largest (absolute, relative) difference:", worst)

    # Its checkpoint (each process wrote its environments' shards) loads on one device.
    assert checkpoint_steps(run_dir) == [3 * STEPS_PER_ITERATION, 4 * STEPS_PER_ITERATION]
    _, saved = load_checkpoint(run_dir)
    assert int(saved.env_steps) == ITERATIONS * STEPS_PER_ITERATION
    assert_same_params(saved, reference.state, atol=1e-4)


def test_log_rows_give_each_bodys_mean_return_and_episode_length():
    """A log window's row: per body, the mean return and length over the episodes it finished;
    a body that finished none is left out; the mean return counts each body once."""
    from equirl.agents.train_log import summarize

    def iteration(count, returns, lengths, loss):
        keys = ("episodes/count", "episodes/return_sum", "episodes/length_sum", "loss/q")
        return {k: np.asarray(v, np.float32) for k, v in zip(keys, (count, returns, lengths, loss))}

    window = [
        iteration([2, 0, 1], [300, 0, 50], [200, 0, 40], 1.0),
        iteration([1, 0, 0], [150, 0, 0], [130, 0, 0], 3.0),
    ]
    row = summarize(window, ["a", "b", "c"])
    assert row["episodes"] == 4 and row["loss/q"] == 2.0
    assert row["return/a"] == 150 and row["episode_length/a"] == 110
    assert row["return/c"] == 50 and row["episode_length/c"] == 40
    assert "return/b" not in row and "episode_length/b" not in row
    assert row["return/mean"] == 100  # (150 + 50) / 2: each body once, not each episode
    assert row["episode_length/mean"] == 370 / 4
