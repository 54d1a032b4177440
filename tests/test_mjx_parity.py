"""The two physics backends agree: same body, seed and actions give the same task.

Stated tolerance (float32, 60 control steps of random actions): observation
vectors within 1e-3 of each other (relative to their scale), scalars within
1e-3, rewards within 1e-2, identical terminations. Measured on hopper_3_shin:
vectors 5e-5, rewards 1e-5. The engines differ in float precision (MuJoCo
steps in float64) and in contact and solver details, so a chaotic enough
run will drift; these bounds hold with a wide margin.
"""

import jax
import numpy as np
import pytest

STEPS = 60


# MJX compiles for over a minute on a CPU (see README, Benchmarks): run with `pytest -m benchmark`.
@pytest.mark.benchmark
@pytest.mark.parametrize(
    "body, servo",
    [("hopper_3_shin", (False, False, False)), ("hopper_3_shin", (True, True, True))],  # torque motors; servos
)
def test_native_and_mjx_agree(make_env, body, servo):
    fields = dict(bodies=(body,), num_envs=2, autoreset=False, hinge_position_control=servo)
    native = make_env(backend="native", **fields)
    mjx = make_env(backend="mjx", **fields)
    a, b = native.reset(jax.random.PRNGKey(0)), mjx.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(a.obs.vectors, b.obs.vectors)  # resets are backend-free
    key = jax.random.PRNGKey(1)
    worst = dict(vectors=0.0, scalars=0.0, reward=0.0)
    for step in range(STEPS):
        key, sub = jax.random.split(key)
        action = jax.random.uniform(sub, (2,) + native.action_shape, minval=-1, maxval=1)
        a, b = native.step(a, action), mjx.step(b, action)
        scale = 1.0 + float(np.abs(a.obs.vectors).max())
        worst["vectors"] = max(worst["vectors"], float(np.abs(a.obs.vectors - b.obs.vectors).max()) / scale)
        worst["scalars"] = max(worst["scalars"], float(np.abs(a.obs.scalars - b.obs.scalars).max()))
        worst["reward"] = max(worst["reward"], float(np.abs(a.reward - b.reward).max()))
        np.testing.assert_array_equal(a.terminated, b.terminated, err_msg=f"step {step}")
    assert worst["vectors"] < 1e-3 and worst["scalars"] < 1e-3 and worst["reward"] < 1e-2, worst
    # The bodies moved: agreement is not that of two frozen states.
    assert np.abs(a.qpos[:, 7:] - native.env.tables.qpos0[:, 7:]).max() > 0.1
