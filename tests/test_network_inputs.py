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
from equirl.nn.config import CHANNEL_FIELDS
from equirl.observation import hinge_rates
from equirl.presets import COMPACT_INPUTS
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


# The channel choice of the crossq presets' compact inputs (without their hinge rates, which
# read the limbs' angular velocities the test below expects the MLP to ignore).
COMPACT = {field: COMPACT_INPUTS[field] for field in CHANNEL_FIELDS}


def test_mlp_reads_only_the_chosen_channels():
    """With a chosen input set the MLP's torques ignore what it leaves out (the limbs' own
    velocities, the normalised angles) and follow what it keeps (a limb's hinge angle, the
    torso's velocity); the Q network reads the same set."""
    from equirl.observation import LINEAR_VELOCITY_CHANNEL, SCALAR_NAMES

    obs = random_observation(9, 3, LIMBS)
    action = jax.random.uniform(jax.random.PRNGKey(5), obs.action_mask.shape, minval=-1, maxval=1)
    config = NetworkConfig(kind="mlp_heading", mlp_hidden=(32,), **COMPACT)
    nets = make_networks(config, LIMBS)
    actor, q = random_parameters(nets.actor, 1, obs), random_parameters(nets.q, 2, obs, action)
    full = make_networks(NetworkConfig(kind="mlp_heading", mlp_hidden=(32,)), LIMBS)
    kernel = [
        p["params"]["body"]["hidden_0"]["kernel"].shape[0] for p in (actor, random_parameters(full.actor, 1, obs))
    ]
    assert kernel[0] == LIMBS * (4 * 3 + 4 + LIMBS + 2) + 2 * 3 and kernel[1] > kernel[0]

    def outputs(o):
        return np.asarray(nets.actor.apply(actor, o).mode()), np.asarray(nets.q.apply(q, o, action))

    base = outputs(obs)
    torso = np.asarray((obs.parent == -1) & obs.limb_mask)
    limbs = np.asarray(obs.limb_mask) & ~torso
    left_out = obs.vectors.at[..., LINEAR_VELOCITY_CHANNEL, :].add(jnp.where(limbs[..., None], 3.0, 0.0))
    left_out_scalars = obs.scalars.at[..., SCALAR_NAMES.index("normalized_angle_y")].add(1.0)
    for moved in (obs.replace(vectors=left_out), obs.replace(scalars=left_out_scalars)):
        for a, b in zip(outputs(moved), base):
            np.testing.assert_allclose(a, b, atol=1e-6)
    kept_torso = obs.vectors.at[..., LINEAR_VELOCITY_CHANNEL, :].add(jnp.where(torso[..., None], 3.0, 0.0))
    kept_angle = obs.scalars.at[:, 1, SCALAR_NAMES.index("angle_y")].add(1.0)
    for moved in (obs.replace(vectors=kept_torso), obs.replace(scalars=kept_angle)):
        for a, b in zip(outputs(moved), base):
            assert np.abs(a - b).max() > 1e-4


def test_mlp_without_parent_inputs_ignores_the_tree():
    """mlp_parent_inputs=false drops every slot's one-hot parent (L + 1 numbers a slot) from
    the MLP's input: torques and Q no longer move when only the parent indices change, which
    they do with the default input."""
    from equirl.errors import ConfigError

    obs = random_observation(4, 3, LIMBS)
    action = jax.random.uniform(jax.random.PRNGKey(6), obs.action_mask.shape, minval=-1, maxval=1)
    other_tree = obs.replace(parent=jnp.where(obs.parent > 0, 0, obs.parent))
    assert np.any(np.asarray(other_tree.parent != obs.parent))
    widths = []
    for parent_inputs in (True, False):
        nets = make_networks(NetworkConfig(kind="mlp", mlp_hidden=(32,), mlp_parent_inputs=parent_inputs), LIMBS)
        actor, q = random_parameters(nets.actor, 1, obs), random_parameters(nets.q, 2, obs, action)
        widths.append(actor["params"]["body"]["hidden_0"]["kernel"].shape[0])
        torques = [np.asarray(nets.actor.apply(actor, o).mode()) for o in (obs, other_tree)]
        values = [np.asarray(nets.q.apply(q, o, action)) for o in (obs, other_tree)]
        moved = max(np.abs(torques[1] - torques[0]).max(), np.abs(values[1] - values[0]).max())
        assert (moved > 1e-4) if parent_inputs else (moved == 0.0)
    assert widths[0] - widths[1] == LIMBS * (LIMBS + 1)
    with pytest.raises(ConfigError, match="mlp_parent_inputs=false: only the mlp kinds"):
        NetworkConfig(kind="set", mlp_parent_inputs=False)


def test_input_channel_names_are_checked():
    from equirl.errors import ConfigError

    with pytest.raises(ConfigError, match="mlp_vector_inputs=.*unknown \\['velocity'\\]"):
        NetworkConfig(kind="mlp_heading", mlp_vector_inputs=("velocity",))
    with pytest.raises(ConfigError, match="mlp_scalar_inputs=.*named twice"):
        NetworkConfig(kind="mlp", mlp_scalar_inputs=("height", "height"))
    with pytest.raises(ConfigError, match="only the mlp kinds choose their inputs"):
        NetworkConfig(kind="set", **COMPACT)
    assert NetworkConfig(kind="set", q_kind="mlp_heading", **COMPACT).mlp_torso_vector_inputs == (
        "linear_velocity",
        "angular_velocity",
    )


@pytest.mark.parametrize("tilt", [0.0, 1e-3, 0.05, 0.3])
def test_hinge_rates_stay_finite_at_gimbal_lock(tilt):
    """Middle hinge at -90 degrees (+tilt): the first and last axes (nearly) coincide. The rates
    stay finite, reproduce the limb's relative spin, and equal the exact solve away from the lock."""
    obs = random_observation(11, 1, LIMBS)
    child = 1
    parent = int(obs.parent[0, child])
    c, s = np.cos(tilt), np.sin(tilt)
    axes = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [c, 0.0, s]])  # z axis turned onto x at tilt 0
    true_rates = np.array([0.7, -1.3, 0.4])
    spin = np.asarray(obs.vectors[0, parent, 4]) + axes.T @ true_rates
    vectors = obs.vectors.at[0, child, 5:8].set(jnp.asarray(axes, jnp.float32)).at[0, child, 4].set(spin)
    rates = np.asarray(hinge_rates(obs.replace(vectors=vectors)))[0, child]
    assert np.all(np.isfinite(rates))
    # Inside the cutoff the near-null direction is dropped: the spin it carries (about
    # tilt x half the difference of the locked rates) is lost, nothing else.
    np.testing.assert_allclose(axes.T @ rates, axes.T @ true_rates, atol=2e-3 + tilt * 0.2)
    if tilt >= 0.3:  # well away from the lock: the rates themselves
        np.testing.assert_allclose(rates, true_rates, atol=1e-4)
    else:  # at the lock only the sum of the first and last is defined
        assert abs(rates[0] + rates[2] - true_rates[0] - true_rates[2]) < 0.05 + 2 * tilt
