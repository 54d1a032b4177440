"""The JAX forward kinematics reproduces MuJoCo's own, for any body."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from equirl.envs.bodies import resolve
from equirl.envs.kinematics import forward_kinematics
from equirl.envs.tables import build_tables, padded_sizes
from helpers.common import gymnasium_ant


def _hinge_axes(model, data, tree):
    axes = np.zeros((tree.num_bodies, 3, 3))
    for k, body in enumerate(tree.body_id):
        slot = 0
        for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
                axes[k, slot] = data.xaxis[j]
                slot += 1
    return axes


@pytest.mark.parametrize(
    "entry", ["hopper_5_full", "humanoid_9_full", "cheetah_14_full", "walker_4_right_knee_left_foot", "ant"]
)
def test_matches_mujoco_on_random_states(entry):
    entry = str(gymnasium_ant()) if entry == "ant" else entry
    morph, params = resolve(entry, max_limbs=16)[0]
    sizes = padded_sizes([morph], 16)
    tables = build_tables([morph], [params], np.zeros(1, int), sizes, frame_skip=4)
    model, data = morph.model, mujoco.MjData(morph.model)
    rng = np.random.default_rng(0)
    fk = jax.jit(forward_kinematics)
    tree_tables = jax.tree.map(lambda x: x[0], tables.tree)
    for _ in range(3):
        data.qpos[:] = model.qpos0 + rng.normal(size=model.nq) * 0.7
        data.qpos[3:7] /= np.linalg.norm(data.qpos[3:7])
        data.qvel[:] = rng.normal(size=model.nv) * 2.0
        mujoco.mj_forward(model, data)
        kin = fk(tree_tables, jnp.asarray(data.qpos, jnp.float32), jnp.asarray(data.qvel, jnp.float32))
        ids = morph.tree.body_id
        velocity = np.zeros((len(ids), 6))
        for k, body in enumerate(ids):
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_XBODY, body, velocity[k], 0)
        np.testing.assert_allclose(kin.xpos, data.xpos[ids], atol=2e-5)
        np.testing.assert_allclose(kin.xmat.reshape(-1, 9), data.xmat[ids], atol=2e-5)
        np.testing.assert_allclose(kin.angvel, velocity[:, :3], atol=5e-5)
        np.testing.assert_allclose(kin.linvel, velocity[:, 3:], atol=5e-5)
        np.testing.assert_allclose(kin.joint_axis, _hinge_axes(model, data, morph.tree), atol=2e-5)
