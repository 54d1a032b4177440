"""SET networks: O_g(3) equivariance, masking, limb order, tilts, numerical safety.

A small SET (width 16) with random parameters (every bias and the tree bias
nonzero) is compiled once; most checks call the same jitted function on
observations of the same shape, so little recompiles.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl import equivariance as eq
from equirl.geometry import Isometry, axis_angle_matrix, random_isometry, reflection_matrix, yaw_matrix
from equirl.nn import NetworkConfig, make_networks
from equirl.nn.set_networks import SETActor
from helpers.synthetic import (
    edge_case_observation,
    pad_with_garbage,
    permute_limbs,
    random_observation,
    random_parameters,
)

SMALL = dict(width=16, depth=2, heads=2, vector_channels=4, invariant_channels=3, vector_key_channels=2)
BATCH, LIMBS = 4, 8  # the environment fixture's shapes, so one compilation serves both
TOL = 1e-5
# Tests check values, not speed: XLA's backend optimisations off compiles ~2x faster.
FAST = {"xla_backend_optimization_level": 0}


def act_on_outputs(g: Isometry, out: dict) -> dict:
    """Torque vectors turn with g; torques, stds, values and Q-values are invariant."""
    return {**out, "vectors": eq.act_on_limb_vectors(g, out["vectors"])}


def relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def net():
    config = NetworkConfig(kind="set", **SMALL)
    nets = make_networks(config, LIMBS)
    obs = random_observation(0, BATCH, LIMBS)
    action = jnp.zeros(obs.action_mask.shape)
    params = (
        random_parameters(nets.actor, 1, obs),
        random_parameters(nets.critic, 2, obs),
        random_parameters(nets.q, 3, obs, action),
    )

    def outputs(obs, action):
        dist = nets.actor.apply(params[0], obs)
        return {
            "mode": dist.mode(),
            "std": dist.stddev(),
            "vectors": nets.actor.apply(params[0], obs, method=SETActor.torque_vectors),
            "value": nets.critic.apply(params[1], obs),
            "q": nets.q.apply(params[2], obs, action),
        }

    return nets, params, jax.jit(outputs, compiler_options=FAST)


def random_action(obs, seed=0):
    return jax.random.uniform(jax.random.PRNGKey(seed), obs.action_mask.shape, minval=-1.0, maxval=1.0)


def assert_equivariant(outputs, obs, elements, tol=TOL):
    action = random_action(obs)
    base = outputs(obs, action)
    for k in ("mode", "value", "q", "vectors"):
        assert np.linalg.norm(np.asarray(base[k])) > 1e-3, f"{k} is trivially small"
    worst = {}
    for i in range(elements.rotation.shape[0]):
        g = jax.tree_util.tree_map(lambda e: e[i], elements)
        moved = outputs(eq.act_on_observation(g, obs), action)
        expected = act_on_outputs(g, base)
        for k in base:
            worst[k] = max(worst.get(k, 0.0), relative(moved[k], expected[k]))
    assert all(err < tol for err in worst.values()), worst
    return worst


def test_equivariant_on_synthetic_observations(net):
    _, _, outputs = net
    obs = random_observation(10, BATCH, LIMBS, shuffle=True)
    elements = random_isometry(jax.random.PRNGKey(0), (8,), reflections=True, translation_scale=5.0)
    assert_equivariant(outputs, obs, elements)
    # A pure reflection and a half turn, explicitly.
    special = Isometry(jnp.stack([reflection_matrix(jnp.array(0.3)), yaw_matrix(jnp.array(np.pi))]), jnp.zeros((2, 3)))
    assert_equivariant(outputs, obs, special)


def test_equivariant_on_environment_observations(net, make_env):
    _, _, outputs = net
    env = make_env(bodies=("walker_7_full", "hopper_3_shin"), num_envs=BATCH, max_limbs=LIMBS)
    obs = env.reset(jax.random.PRNGKey(0)).obs
    elements = random_isometry(jax.random.PRNGKey(1), (6,))
    assert_equivariant(outputs, obs, elements)


def test_translations_act_trivially():
    # The observation has no absolute horizontal position (positions are
    # relative to the torso), so a translated scene has the same observation:
    # the group action on inputs ignores the translation, and so do outputs.
    # (The random elements of the other tests carry translations too.)
    obs = random_observation(11, BATCH, LIMBS)
    g = Isometry(jnp.eye(3), jnp.array([3.0, -2.0, 0.0]))
    moved = eq.act_on_observation(g, obs)
    for a, b in zip(jax.tree_util.tree_leaves(moved), jax.tree_util.tree_leaves(obs)):
        np.testing.assert_array_equal(a, b)


def test_finite_group_metric_is_near_zero(net):
    # (The Lie-derivative metric needs a jvp, i.e. another compilation; it is
    # checked on the cheap baselines in test_nn_baselines.py.)
    _, _, outputs = net
    obs = random_observation(12, BATCH, LIMBS, shuffle=True)
    action = random_action(obs)
    finite = eq.finite_group_error(lambda o: outputs(o, action), obs, jax.random.PRNGKey(2), 4, act_out=act_on_outputs)
    assert float(finite) < TOL


def test_tilting_gravity_changes_outputs(net):
    # Only O_g(3) is a symmetry: a rotation about a horizontal axis moves every
    # vector (the gravity channel too), but the network's own down vector stays.
    _, _, outputs = net
    obs = random_observation(13, BATCH, LIMBS)
    action = random_action(obs)
    base = outputs(obs, action)
    tilt = Isometry(axis_angle_matrix(jnp.array([1.0, 0.0, 0.0]), jnp.array(0.5)), jnp.zeros(3))
    moved = outputs(eq.act_on_observation(tilt, obs), action)
    expected = act_on_outputs(tilt, base)
    for k in ("mode", "value", "q", "vectors"):
        assert relative(moved[k], expected[k]) > 1e-2, k


def test_masked_dummy_limbs_change_nothing(net):
    nets, params, outputs = net
    obs = random_observation(14, BATCH, LIMBS, min_real=2)
    action = random_action(obs)
    base = outputs(obs, action)
    real = np.asarray(obs.limb_mask)

    # Garbage in the padding slots (and in the actions of undriven hinges).
    garbage = pad_with_garbage(obs, 0, seed=0)
    undriven = ~np.asarray(obs.action_mask & obs.limb_mask[..., None])
    out = outputs(garbage, jnp.where(undriven, 0.9, action))
    for k in ("value", "q"):
        np.testing.assert_allclose(out[k], base[k], rtol=1e-5, atol=1e-6, err_msg=k)
    for k in ("mode", "std", "vectors"):
        np.testing.assert_allclose(np.asarray(out[k])[real], np.asarray(base[k])[real], rtol=1e-5, atol=1e-6, err_msg=k)
    assert np.all(np.asarray(out["mode"])[undriven] == 0.0) and np.all(np.asarray(out["std"])[undriven] == 0.0)

    # Three more padding slots (actor and critic: one more compilation, not three).
    def actor_critic(obs):
        dist = nets.actor.apply(params[0], obs)
        return dist.mode(), dist.stddev(), nets.critic.apply(params[1], obs)

    mode, std, value = jax.jit(actor_critic, compiler_options=FAST)(pad_with_garbage(obs, 3, seed=1))
    np.testing.assert_allclose(value, base["value"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mode)[:, :LIMBS][real], np.asarray(base["mode"])[real], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(std)[:, :LIMBS][real], np.asarray(base["std"])[real], rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(mode)[:, LIMBS:] == 0.0) and np.all(np.asarray(std)[:, LIMBS:] == 0.0)


def test_permuting_limb_storage_permutes_outputs(net):
    _, _, outputs = net
    obs = random_observation(15, BATCH, LIMBS)
    action = random_action(obs)
    base = outputs(obs, action)
    order = np.random.default_rng(0).permutation(LIMBS)
    out = outputs(permute_limbs(obs, order), action[:, order])
    for k in ("value", "q"):
        np.testing.assert_allclose(out[k], base[k], rtol=1e-5, atol=1e-6)
    for k in ("mode", "std", "vectors"):
        np.testing.assert_allclose(out[k], np.asarray(base[k])[:, order], rtol=1e-5, atol=1e-6)


def test_tree_structure_matters(net):
    # The tree bias is live: the same limbs under another tree give other outputs.
    _, _, outputs = net
    obs = random_observation(16, BATCH, LIMBS, min_real=LIMBS)
    action = random_action(obs)
    chain = jnp.broadcast_to(jnp.arange(LIMBS) - 1, obs.parent.shape).astype(obs.parent.dtype)
    star = jnp.where(jnp.arange(LIMBS) == 0, -1, 0) * jnp.ones_like(obs.parent)
    a = outputs(obs.replace(parent=chain), action)["value"]
    b = outputs(obs.replace(parent=star), action)["value"]
    assert relative(a, b) > 1e-3


def test_values_and_gradients_finite_on_padded_batches(net):
    nets, params, outputs = net
    obs = edge_case_observation(17, LIMBS)
    action = random_action(obs)
    out = outputs(obs, action)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in out.values())

    # Actor and critic: between them every part of the SET (the twin Q is the
    # critic's trunk with the action as extra linear inputs).
    def loss(params, vectors):
        o = obs.replace(vectors=vectors)
        dist = nets.actor.apply(params[0], o)
        _, log_prob = dist.sample_and_log_prob(seed=jax.random.PRNGKey(0))
        value = nets.critic.apply(params[1], o)
        return jnp.sum(log_prob) + jnp.sum(dist.entropy()) + jnp.sum(dist.log_prob(action)) + jnp.sum(value**2)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=FAST)((params[0], params[1]), obs.vectors)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
    assert any(np.any(np.asarray(leaf) != 0) for leaf in jax.tree_util.tree_leaves(grads[0]))


def _float32(obs):
    return obs.replace(vectors=jnp.asarray(obs.vectors, jnp.float32), scalars=jnp.asarray(obs.scalars, jnp.float32))


def test_equivariant_to_the_physical_mirror_step_after_step(net, make_env):
    """A mirrored scene, stepped by the physics with the policy's own actions, gets the
    mirrored actions (hinges and limbs relabelled by the body's mirror map), the same value
    and the same Q -- the check e3nn-jax's assert_equivariant makes, on the real environment."""
    from equirl.envs import symmetry
    from equirl.morphology.mirror import mirror_map
    from equirl.observation import AXIAL_CHANNELS
    from helpers.common import float64

    _, _, outputs = net
    env = make_env(x64=True, bodies=("walker_7_full",), num_envs=BATCH, max_limbs=LIMBS, autoreset=False)
    mirror = mirror_map(env.morphologies[0])
    flip = lambda a: symmetry.transform_action(a, mirror)  # noqa: E731
    state = env.reset(jax.random.PRNGKey(4))
    with float64():
        normal = jnp.asarray(np.random.default_rng(5).uniform(-np.pi, np.pi, BATCH))
        mirrored = symmetry.reflect_state(state.qpos, state.qvel, state.target, mirror, normal)
    other, start = env.with_state(state, *mirrored), np.asarray(state.qpos[:, :2])
    worst = {}
    for step in range(12):
        a, b = _float32(state.obs), _float32(other.obs)
        probe = random_action(a, seed=step)
        out_a, out_b = outputs(a, probe), outputs(b, flip(probe))
        for key, expected in (("mode", flip(out_a["mode"])), ("value", out_a["value"]), ("q", out_a["q"])):
            worst[key] = max(worst.get(key, 0.0), relative(out_b[key], expected))
        if step == 0:
            # Negative control: hinge axes and spin treated as polar (no sign flip) break it.
            axial = np.zeros(b.vectors.shape[-2], bool)
            axial[list(AXIAL_CHANNELS)] = True
            wrong = b.replace(vectors=jnp.where(axial[:, None], -b.vectors, b.vectors))
            assert relative(outputs(wrong, flip(probe))["mode"], flip(out_a["mode"])) > 1e-2
        with float64():
            action = jnp.asarray(out_a["mode"], jnp.float64) + 0.5 * jnp.asarray(probe, jnp.float64)
            state, other = env.step(state, action), env.step(other, flip(action))
    assert np.abs(np.asarray(state.qpos[:, :2]) - start).max() > 1e-3  # checked on a moving scene
    assert all(err < TOL for err in worst.values()), worst
