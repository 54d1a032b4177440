"""Position servos on the hinges: the torque MuJoCo applies, the held pose, bad input.
(Their mirror symmetry is checked with the task's, in test_symmetry.py.)"""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from equirl.envs import position_control
from equirl.envs.bodies import resolve
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError


def test_the_servo_torque_is_gear_times_the_clipped_pd_law():
    ((morph, _),) = resolve("walker_7_full", max_limbs=16)
    model, graph = morph.model, morph.graph
    gain, damping = 5.0, 0.05
    before = model.actuator_gear[:, 0].copy()
    changed = position_control.apply(morph, (True, False, True), gain, damping)
    assert changed == int(graph.action_mask[:, [0, 2]].sum()) > 0
    np.testing.assert_array_equal(model.actuator_gear[:, 0], before)  # the torque limit stays the gear

    rng = np.random.default_rng(0)
    data = mujoco.MjData(model)
    data.qpos[7:] = rng.uniform(-0.3, 0.3, model.nq - 7)
    data.qvel[6:] = rng.uniform(-2.0, 2.0, model.nv - 6)
    data.ctrl[:] = rng.uniform(-1.0, 1.0, model.nu)
    mujoco.mj_forward(model, data)
    for limb, axis in zip(*np.nonzero(graph.action_mask)):
        a = graph.actuator[limb, axis]
        q, dq = data.qpos[graph.hinge_qposadr[limb, axis]], data.qvel[graph.hinge_dofadr[limb, axis]]
        gear = model.actuator_gear[a, 0]
        if axis == 1:  # pitch hinges keep their torque motors
            expected = gear * data.ctrl[a]
        else:
            target = data.ctrl[a] * np.abs(graph.hinge_range[limb, axis]).max()
            expected = gear * np.clip(gain * (target - q) - damping * dq, -1.0, 1.0)
        assert data.qfrc_actuator[graph.hinge_dofadr[limb, axis]] == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_a_zero_action_holds_the_standing_pose_and_eval_keeps_the_servos(make_env):
    """With torque motors a zero action leaves the hinges limp; with servos they stay near 0."""
    drift = {}
    for servo in ((False, False, False), (True, True, True)):
        env = make_env(bodies=("walker_7_full",), num_envs=4, autoreset=False, hinge_position_control=servo)
        state = env.reset(jax.random.PRNGKey(3))
        zero = jnp.zeros((env.num_envs,) + env.action_shape)
        for _ in range(30):
            state = env.step(state, zero)
        graph = env.env.morphologies[0].graph
        drift[servo] = np.abs(np.asarray(state.qpos)[:, graph.hinge_qposadr[graph.action_mask]]).max()
        assert env.env.config.without_training_aids().hinge_position_control == servo
    assert drift[(True, True, True)] < 0.1 < drift[(False, False, False)], drift


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"hinge_position_control": (True, False)}, r"hinge_position_control=.*three booleans"),
        ({"hinge_position_control": (1, 0, 1)}, r"hinge_position_control=.*three booleans"),
        ({"position_gain": 0.0}, r"position_gain=0.0: must be > 0"),
        ({"position_damping": -1.0}, r"position_damping=-1.0: must be >= 0"),
        ({"hinge_position_control": (True, True, True), "base_controller": "lqr"}, r"computes torques"),
    ],
)
def test_bad_servo_settings_are_refused(fields, match):
    with pytest.raises(ConfigError, match=match):
        EnvConfig(bodies=("hopper_5_full",), **fields)
