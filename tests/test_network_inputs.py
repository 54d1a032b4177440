"""What the networks read besides the observation table: hinge rates solved from it (exact
against the simulator, invariant under O(3), SET stays equivariant) and the vector scales."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl import equivariance as eq
from equirl.geometry import random_isometry
from equirl.nn import NetworkConfig, make_networks
from equirl.observation import hinge_rates
from helpers.synthetic import random_observation, random_parameters

LIMBS = 8


def test_hinge_rates_are_the_simulators_joint_velocities(make_env):
    """After random torques, the rates solved from limb angular velocities and axes equal
    qvel at every real hinge (walker_7 and hopper_3 in one batch, padded to 8 slots)."""
    env = make_env(bodies=("walker_7_full", "hopper_3_shin"), num_envs=4, max_limbs=LIMBS)
    state = env.reset(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    for _ in range(10):
        state = env.step(state, jnp.asarray(rng.uniform(-1, 1, (4, LIMBS, 3)), jnp.float32))
    rates = np.asarray(hinge_rates(state.obs))
    tables, qvel = env.env.tables, np.asarray(state.qvel)
    valid = np.asarray(tables.hinge_valid)
    expected = np.zeros_like(rates)
    for b, morph in enumerate(env.env.morphologies[i % len(env.env.morphologies)] for i in range(4)):
        model = morph.model
        dof_of = {int(model.jnt_qposadr[j]): int(model.jnt_dofadr[j]) for j in range(model.njnt)}
        adr = np.asarray(tables.hinge_qposadr[b])
        for slot in zip(*np.nonzero(valid[b])):
            expected[(b, *slot)] = qvel[b, dof_of[int(adr[slot])]]
    assert np.abs(expected).max() > 0.5  # the bodies are moving
    np.testing.assert_allclose(rates, expected, atol=1e-4 * np.abs(expected).max())
    assert np.all(rates[~valid] == 0.0)


def test_hinge_rates_are_invariant_to_rotations_and_reflections():
    obs = random_observation(3, 6, LIMBS, shuffle=True)
    base = np.asarray(hinge_rates(obs))
    assert np.abs(base).max() > 0.1
    elements = random_isometry(jax.random.PRNGKey(2), (6,), reflections=True)
    for i in range(6):
        g = jax.tree_util.tree_map(lambda e: e[i], elements)
        np.testing.assert_allclose(hinge_rates(eq.act_on_observation(g, obs)), base, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["set", "mlp_heading"])
def test_networks_read_hinge_rates_and_set_stays_equivariant(kind):
    """With hinge_rate_inputs the actor's output moves when only the relative angular
    velocities change; SET's torques and Q stay invariant under random O(3) elements."""
    small = dict(width=16, depth=1, heads=2, vector_channels=4, invariant_channels=3, vector_key_channels=2)
    config = NetworkConfig(kind=kind, mlp_hidden=(32,), hinge_rate_inputs=True, **small)
    nets = make_networks(config, LIMBS)
    obs = random_observation(4, 4, LIMBS)
    action = jax.random.uniform(jax.random.PRNGKey(5), obs.action_mask.shape, minval=-1, maxval=1)
    actor = random_parameters(nets.actor, 1, obs)
    q = random_parameters(nets.q, 2, obs, action)
    plain = make_networks(dataclasses.replace(config, hinge_rate_inputs=False), LIMBS)
    sizes = [sum(x.size for x in jax.tree.leaves(p)) for p in (actor, random_parameters(plain.actor, 1, obs))]
    assert sizes[0] > sizes[1]  # the rates are extra inputs

    def outputs(o):
        return nets.actor.apply(actor, o).mode(), nets.q.apply(q, o, action)

    base = outputs(obs)
    if kind == "set":
        elements = random_isometry(jax.random.PRNGKey(6), (4,), reflections=True)
        for i in range(4):
            g = jax.tree_util.tree_map(lambda e: e[i], elements)
            for moved, expected in zip(outputs(eq.act_on_observation(g, obs)), base):
                # Relative to the output's norm: the synthetic axes are random, not orthogonal,
                # so the float32 solve of a poorly conditioned limb loses a few digits.
                assert np.linalg.norm(moved - expected) < 1e-4 * np.linalg.norm(expected)
    # A common spin added to every limb leaves every hinge rate as it was.
    spin = obs.vectors.at[..., 4, :].add(jnp.array([0.3, -0.2, 0.5]))
    np.testing.assert_allclose(hinge_rates(obs.replace(vectors=spin)), hinge_rates(obs), atol=1e-5)
    # Only the second limb's spin changes: the rates, and with them the torques, change.
    turned = obs.vectors.at[:, 1, 4, :].add(2.0)
    assert np.abs(np.asarray(outputs(obs.replace(vectors=turned))[0] - base[0])).max() > 1e-4


def test_fixed_vector_scales_off_reads_the_vectors_as_they_are():
    """fixed_vector_scales=False: the flattened input carries the (normalised) vectors
    unscaled, where the default multiplies velocities by 0.1; the MLP kinds' outputs change
    with it, and SET with it stays equivariant."""
    from equirl.nn.baselines import flatten_observation
    from equirl.observation import LINEAR_VELOCITY_CHANNEL, NUM_VECTORS

    obs = random_observation(7, 2, LIMBS)
    raw = np.asarray(flatten_observation(obs, fixed_scale=False)).reshape(2, LIMBS, -1)
    scaled = np.asarray(flatten_observation(obs)).reshape(2, LIMBS, -1)
    velocity = slice(3 * LINEAR_VELOCITY_CHANNEL, 3 * LINEAR_VELOCITY_CHANNEL + 3)
    real = np.asarray(obs.limb_mask)
    np.testing.assert_allclose(raw[..., velocity][real], np.asarray(obs.vectors[..., LINEAR_VELOCITY_CHANNEL, :])[real])
    np.testing.assert_allclose(scaled[..., velocity], 0.1 * raw[..., velocity], rtol=1e-6)
    np.testing.assert_array_equal(raw[..., 3 * NUM_VECTORS :], scaled[..., 3 * NUM_VECTORS :])  # scalars untouched

    small = dict(width=16, depth=1, heads=2, vector_channels=4, invariant_channels=3, vector_key_channels=2)
    for kind in ("mlp_heading", "set"):
        config = NetworkConfig(kind=kind, mlp_hidden=(32,), **small)
        nets = make_networks(config, LIMBS)
        params = random_parameters(nets.actor, 1, obs)
        unit = make_networks(dataclasses.replace(config, fixed_vector_scales=False), LIMBS)
        a, b = (n.actor.apply(params, obs).mode() for n in (nets, unit))
        assert np.abs(np.asarray(a - b)).max() > 1e-4, kind
    g = jax.tree_util.tree_map(lambda e: e[0], random_isometry(jax.random.PRNGKey(8), (1,), reflections=True))
    moved = unit.actor.apply(params, eq.act_on_observation(g, obs)).mode()
    assert np.linalg.norm(moved - b) < 1e-4 * np.linalg.norm(b)
