"""Data parallelism: launch settings, validation, shardings, and runs on 2 devices
and in 2 processes that give the losses of 1 device.

JAX fixes its device count when it starts, so the multi-device runs are
subprocesses (`launch_two_devices`, `launch_two_processes`). The runs they are
compared with are the 1-device runs tests/test_train.py (PPO, through the
training driver) and tests/test_offpolicy.py (SAC) make anyway, so nothing compiles
twice; those files hold the comparisons.

Tolerance: the same global batch on 1 and 2 devices is the same computation
with float32 sums taken in another order (per-device partial sums, then an
all-reduce), so losses agree to rounding: within LOSS_RTOL relative, or
LOSS_ATOL absolute for values near 0 (measured: see README, "Scale out").

    python tests/test_distributed.py ppo OUT   # the 2-device PPO job (XLA_FLAGS set by the launcher)
    python tests/test_distributed.py sac OUT   # the 2-device SAC job
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

# --- unit tests (this process, one device) -------------------------------------------------


def test_launch_settings_from_equirl_variables():
    from equirl.agents.distributed import launch_settings

    assert launch_settings({}) is None
    env = {"EQUIRL_COORDINATOR": "node0:1234", "EQUIRL_NUM_PROCESSES": "4", "EQUIRL_PROCESS_ID": "3"}
    assert launch_settings(env) == {"coordinator_address": "node0:1234", "num_processes": 4, "process_id": 3}
    # SLURM: JAX's own detection when the step has several tasks; one task is a plain run.
    assert launch_settings({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}) == {}
    assert launch_settings({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None


@pytest.mark.parametrize(
    "change, named",
    [
        ({"EQUIRL_NUM_PROCESSES": "two"}, "EQUIRL_NUM_PROCESSES='two'"),
        ({"EQUIRL_NUM_PROCESSES": "0"}, "EQUIRL_NUM_PROCESSES='0'"),
        ({"EQUIRL_PROCESS_ID": "2"}, "EQUIRL_PROCESS_ID=2: must be below EQUIRL_NUM_PROCESSES=2"),
        ({"EQUIRL_PROCESS_ID": "-1"}, "EQUIRL_PROCESS_ID='-1'"),
        ({"EQUIRL_COORDINATOR": "node0"}, "EQUIRL_COORDINATOR='node0'"),
        ({"EQUIRL_COORDINATOR": None}, "EQUIRL_COORDINATOR=''"),
    ],
)
def test_bad_launch_variables_are_named(change, named):
    from equirl.agents.distributed import initialize_from_env, launch_settings
    from equirl.errors import ConfigError

    env = {"EQUIRL_COORDINATOR": "localhost:1234", "EQUIRL_NUM_PROCESSES": "2", "EQUIRL_PROCESS_ID": "0"}
    env.update(change)
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        launch_settings(env)
    with pytest.raises(ConfigError):
        initialize_from_env(env)  # refused before JAX is asked for anything


def test_batch_sizes_must_split_over_the_devices():
    from equirl.agents.distributed import check_divisible
    from equirl.errors import ConfigError

    assert check_divisible("env.num_envs", 4096, 8) == 512
    with pytest.raises(ConfigError, match=r"env.num_envs=6: must be divisible by the number of devices \(4\)"):
        check_divisible("env.num_envs", 6, 4)


def test_environments_and_replay_rows_are_sharded_the_rest_replicated():
    from equirl.agents import distributed
    from equirl.agents.train import build
    from helpers.runs import sac_config

    mesh = distributed.single_device_mesh()
    env, _, agent = build(sac_config("unused"), mesh)
    try:
        shapes = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    finally:
        env.close()
    shardings = distributed.state_shardings(mesh, shapes)
    rows, everywhere = distributed.batch_sharding(mesh).spec, distributed.replicated(mesh).spec
    for leaf in (
        jax.tree.leaves(shardings.env_state)
        + jax.tree.leaves(shardings.buffer.data)
        + jax.tree.leaves(shardings.per_env)
    ):
        assert leaf.spec == rows
    for part in (
        shardings.learner,
        shardings.normalizer,
        shardings.key,
        shardings.buffer.position,
        shardings.buffer.size,
        shardings.env_steps,
    ):
        assert all(leaf.spec == everywhere for leaf in jax.tree.leaves(part))
    # What a checkpoint is restored into: the same shapes, placed as above.
    abstract = distributed.abstract_state(mesh, shapes)
    assert abstract.env_state.qpos.shape == shapes.env_state.qpos.shape
    assert abstract.env_state.qpos.sharding.spec == rows and abstract.params.actor is not None


def test_local_rows_of_a_single_process_are_all_rows():
    from equirl.agents.distributed import batch_sharding, local_rows, single_device_mesh

    x = jax.device_put(np.arange(12.0).reshape(6, 2), batch_sharding(single_device_mesh()))
    np.testing.assert_array_equal(local_rows(x), np.arange(12.0).reshape(6, 2))


def _custom_calls(backend: str, algorithm: str) -> set[str]:
    """Targets of every custom call in the lowered training iteration (lowered, not compiled)."""
    import re

    from equirl.agents import distributed
    from equirl.agents.train import build
    from helpers.runs import sac_config, tiny_config

    config = tiny_config("unused") if algorithm == "ppo" else sac_config("unused")
    config = dataclasses.replace(config, env=dataclasses.replace(config.env, backend=backend))
    env, _, agent = build(config)
    try:
        shapes = distributed.abstract_state(env.mesh, jax.eval_shape(agent.init, jax.random.PRNGKey(0)))
        text = jax.jit(agent.iteration).lower(shapes).as_text()
    finally:
        env.close()
    return set(re.findall(r"custom_call @([\w.]+)", text))


@pytest.mark.benchmark  # tracing MJX takes about half a minute per algorithm on 2 cores: not run by default
@pytest.mark.parametrize("algorithm", ["ppo", "sac"])
def test_the_mjx_iteration_is_one_program_without_host_callbacks(algorithm):
    """On MJX an iteration never leaves the device: its only custom calls are linear
    algebra kernels (LAPACK here, cuSOLVER on a GPU). The native backend's iteration
    calls back into Python to step MuJoCo, which this check would see."""
    mjx = _custom_calls("mjx", algorithm)
    assert not [target for target in mjx if "callback" in target], mjx
    assert all(target.startswith(("lapack_", "cusolver", "cublas", "hipsolver")) for target in mjx), mjx
    assert any("callback" in target for target in _custom_calls("native", algorithm))


# --- the 2-device jobs (run as subprocesses) -----------------------------------------------


def _ppo_job(out: Path) -> dict:
    """PPO through the training driver on 2 devices: stopped after 2 iterations, resumed
    to the end from its (sharded) checkpoint; plus what bad batch sizes are told."""
    import dataclasses

    from equirl.agents import distributed
    from equirl.agents import train as T
    from equirl.agents.config import OffPolicyConfig, PPOConfig
    from equirl.errors import ConfigError
    from helpers.runs import ITERATIONS, sac_config, tiny_config

    assert jax.device_count() == 2
    mesh = distributed.global_mesh()
    errors = {}
    bad = {
        "num_envs": dataclasses.replace(
            tiny_config(out / "bad"), env=dataclasses.replace(tiny_config(out).env, num_envs=3)
        ),
        "minibatch": dataclasses.replace(tiny_config(out / "bad"), ppo=PPOConfig(rollout_length=8, minibatches=32)),
        "batch_size": dataclasses.replace(
            sac_config(out / "bad"), offpolicy=OffPolicyConfig(buffer_size=256, batch_size=15)
        ),
        "buffer_size": dataclasses.replace(
            sac_config(out / "bad"), offpolicy=OffPolicyConfig(buffer_size=255, batch_size=16)
        ),
    }
    for name, config in bad.items():
        try:
            env, _, _ = T.build(config, mesh)
            env.close()
            errors[name] = None
        except ConfigError as err:
            errors[name] = str(err)

    real_build, built = T.build, {}

    def build_once(config, mesh=None):  # the resumed call reuses the compiled iteration
        if "agent" not in built:
            env, networks, agent = real_build(config, mesh)
            env.close = lambda: None  # train() closes it, the resumed call still needs it; the process ends soon
            built["agent"] = env, networks, agent
        return built["agent"]

    T.build = build_once
    config = tiny_config(out / "run")
    half = ITERATIONS // 2
    first = T.train(config, callback=lambda state, row: row["iteration"] == half)
    resumed = T.train(config, resume=True)
    state = resumed.state
    return {
        "errors": errors,
        "history": first.history + resumed.history,
        "env_sharding": str(state.env_state.qpos.sharding.spec),
        "env_devices": len(state.env_state.qpos.sharding.device_set),
        "params": [np.asarray(x).tolist() for x in jax.tree.leaves(jax.device_get(state.params))],
    }


def _sac_job(out: Path) -> dict:
    """The SAC run of tests/test_offpolicy.py (mlp networks), on a mesh of 2 devices."""
    from equirl.agents import distributed
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig
    from helpers.offpolicy import ENV, ITERATIONS, make_agent

    assert jax.device_count() == 2
    env = BatchedEnv(EnvConfig(**ENV), mesh=distributed.global_mesh())
    try:
        agent, _ = make_agent(env, "sac", "mlp")
        key = jax.random.key(0)
        state = jax.jit(agent.init)(key)
        iteration = jax.jit(agent.iteration)
        metrics = []
        for _ in range(ITERATIONS):
            state, m = iteration(state)
            metrics.append({k: np.asarray(v).tolist() for k, v in jax.device_get(m).items()})
        return {
            "metrics": metrics,
            "buffer_sharding": str(state.buffer.data.reward.sharding.spec),
            "buffer_size": int(state.buffer.size),
        }
    finally:
        env.close()


JOBS = {"ppo": _ppo_job, "sac": _sac_job}


if __name__ == "__main__":
    job, out = sys.argv[1], Path(sys.argv[2])
    result = JOBS[job](out)
    (out / "result.json").write_text(json.dumps(result))
