"""Baselines: same interface, not equivariant (so the metric is not trivially zero),
except mlp_heading, which is exactly invariant to rotations about z but not to
reflections. Masking, limb order and finite gradients for all of them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from equirl import equivariance as eq
from equirl.errors import ConfigError
from equirl.geometry import Isometry, random_isometry
from equirl.nn import NetworkConfig, make_networks
from equirl.nn.baselines import MLPQTrunk
from equirl.nn.heads import fan_in_init
from helpers.synthetic import (
    edge_case_observation,
    pad_with_garbage,
    permute_limbs,
    random_observation,
    random_parameters,
)

SMALL = dict(width=16, depth=1, heads=2, mlp_hidden=(32,))
BATCH, LIMBS = 4, 8
FAST = {"xla_backend_optimization_level": 0}  # tests check values, not speed


@pytest.fixture(scope="module")
def nets():
    obs = random_observation(0, BATCH, LIMBS)
    action = jnp.zeros(obs.action_mask.shape)
    built = {}
    for i, kind in enumerate(("mlp", "mlp_heading", "transformer")):
        n = make_networks(NetworkConfig(kind=kind, **SMALL), LIMBS)
        params = (
            random_parameters(n.actor, 3 * i, obs),
            random_parameters(n.critic, 3 * i + 1, obs),
            random_parameters(n.q, 3 * i + 2, obs, action),
        )

        def outputs(obs, action, n=n, params=params):
            dist = n.actor.apply(params[0], obs)
            return {
                "mode": dist.mode(),
                "std": dist.stddev(),
                "value": n.critic.apply(params[1], obs),
                "q": n.q.apply(params[2], obs, action),
            }

        built[kind] = (n, params, jax.jit(outputs, compiler_options=FAST))
    return built


def errors(outputs, obs, reflections: bool):
    action = jax.random.uniform(jax.random.PRNGKey(5), obs.action_mask.shape, minval=-1.0, maxval=1.0)
    out = {}
    for k in ("mode", "value", "q"):
        fn = lambda o, k=k: outputs(o, action)[k]  # noqa: E731
        out[k] = float(eq.finite_group_error(fn, obs, jax.random.PRNGKey(1), 6, reflections=reflections))
    return out


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_baselines_are_not_equivariant(nets, kind):
    obs = random_observation(1, BATCH, LIMBS, shuffle=True)
    err = errors(nets[kind][2], obs, reflections=True)
    # Thousands of times SET's errors (< 1e-5): the metric is not trivially zero.
    assert all(e > 0.02 for e in err.values()), err


def test_heading_mlp_is_rotation_invariant_only(nets):
    obs = random_observation(2, BATCH, LIMBS)
    rotations = errors(nets["mlp_heading"][2], obs, reflections=False)
    assert all(e < 1e-5 for e in rotations.values()), rotations
    # No handedness is fixed, so a reflection shows: canonicalising a mirrored
    # scene gives the mirror image of the canonical scene.
    mirror = Isometry(jnp.diag(jnp.array([1.0, -1.0, 1.0])), jnp.zeros(3))
    outputs = nets["mlp_heading"][2]
    action = jnp.zeros(obs.action_mask.shape)
    a, b = outputs(obs, action)["value"], outputs(eq.act_on_observation(mirror, obs), action)["value"]
    assert float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a)) > 0.05


def test_lie_derivative_on_real_networks(nets):
    # mlp_heading is invariant to rotations about z: its Lie derivative along
    # the z generator vanishes; the plain MLP's does not. Translations act
    # trivially on observations, so that Lie derivative is exactly zero.
    obs = random_observation(7, BATCH, LIMBS)
    action = jnp.zeros(obs.action_mask.shape)
    heading = lambda o: nets["mlp_heading"][2](o, action)  # noqa: E731
    plain = lambda o: nets["mlp"][2](o, action)  # noqa: E731
    assert float(eq.rotation_lie_error(heading, obs)) < 1e-5
    assert float(eq.rotation_lie_error(plain, obs)) > 0.02
    assert float(eq.translation_lie_error(plain, obs)) == 0.0


def test_heading_canonicalisation_is_exact(nets):
    from equirl.nn.baselines import canonicalize_heading

    obs = random_observation(3, BATCH, LIMBS)
    canon = canonicalize_heading(obs)
    target = canon.vectors[..., 2, :][np.asarray(obs.limb_mask)]
    np.testing.assert_allclose(target, np.broadcast_to([1.0, 0.0, 0.0], target.shape), atol=1e-6)
    for i in range(3):
        g = jax.tree_util.tree_map(lambda e: e[i], random_isometry(jax.random.PRNGKey(i), (3,), reflections=False))
        moved = canonicalize_heading(eq.act_on_observation(g, obs))
        np.testing.assert_allclose(moved.vectors, canon.vectors, atol=2e-6)


def test_padding_content_is_ignored(nets):
    # Garbage in padding slots (same number of slots) changes nothing.
    obs = random_observation(4, BATCH, LIMBS, min_real=2)
    rng = np.random.default_rng(0)
    pad = ~np.asarray(obs.limb_mask)
    garbage = obs.replace(
        vectors=jnp.where(jnp.asarray(pad)[..., None, None], rng.normal(0, 5, obs.vectors.shape), obs.vectors).astype(
            jnp.float32
        ),
        scalars=jnp.where(jnp.asarray(pad)[..., None], rng.normal(0, 5, obs.scalars.shape), obs.scalars).astype(
            jnp.float32
        ),
        action_mask=obs.action_mask | jnp.asarray(pad)[..., None],
    )
    action = jax.random.uniform(jax.random.PRNGKey(0), obs.action_mask.shape, minval=-1.0, maxval=1.0)
    for kind, (_, _, outputs) in nets.items():
        a, b = outputs(obs, action), outputs(garbage, action)
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=f"{kind} {k}")


def test_transformer_limb_order_and_extra_padding(nets):
    _, _, outputs = nets["transformer"]
    obs = random_observation(5, BATCH, LIMBS, min_real=2)
    action = jax.random.uniform(jax.random.PRNGKey(0), obs.action_mask.shape, minval=-1.0, maxval=1.0)
    base = outputs(obs, action)
    order = np.random.default_rng(1).permutation(LIMBS)
    out = outputs(permute_limbs(obs, order), action[:, order])
    np.testing.assert_allclose(out["value"], base["value"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["mode"], np.asarray(base["mode"])[:, order], rtol=1e-5, atol=1e-6)
    padded = pad_with_garbage(obs, 2, seed=1)
    out = outputs(padded, jnp.concatenate([action, jnp.ones((BATCH, 2, 3))], 1))
    np.testing.assert_allclose(out["q"], base["q"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out["mode"])[:, :LIMBS], base["mode"], rtol=1e-5, atol=1e-6)


def test_mlp_rejects_other_limb_counts(nets):
    n, params, _ = nets["mlp"]
    obs = random_observation(6, BATCH, LIMBS + 1)
    with pytest.raises(ConfigError, match="max_limbs"):
        n.critic.apply(params[1], obs)


def test_gradients_finite_on_padded_batches(nets):
    obs = edge_case_observation(17, LIMBS)
    # The heading frame also meets a zero target direction here.
    obs = obs.replace(vectors=obs.vectors.at[1].set(0.0))
    action = jnp.zeros(obs.action_mask.shape)
    for kind in ("mlp_heading", "transformer"):  # the plain MLP has nothing that could divide by zero
        n, params, _ = nets[kind]

        def loss(params, vectors, n=n):
            o = obs.replace(vectors=vectors)
            dist = n.actor.apply(params[0], o)
            return jnp.sum(dist.log_prob(action)) + jnp.sum(dist.entropy()) + jnp.sum(n.critic.apply(params[1], o))

        value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), compiler_options=FAST)(params[:2], obs.vectors)
        assert np.isfinite(float(value)), kind
        assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(grads)), kind


@pytest.mark.parametrize("kind", ["mlp", "set"])  # the transformer shares SET's head (LogStdHead)
def test_a_shared_log_std_is_one_learned_number_per_slot(kind):
    config = NetworkConfig(kind=kind, state_dependent_std=False, log_std_init=-2.0, **SMALL)
    actor = make_networks(config, LIMBS).actor
    first, second = random_observation(1, BATCH, LIMBS), random_observation(2, BATCH, LIMBS)
    params = actor.init(jax.random.PRNGKey(0), first)
    assert "shared_log_std" in str(jax.tree_util.tree_structure(params))
    std = jax.jit(lambda obs: actor.apply(params, obs).stddev())
    real = np.asarray(first.action_mask & second.action_mask)
    # The same in every state (and, for the per-limb heads, every limb), and starting at log_std_init.
    np.testing.assert_allclose(np.asarray(std(first))[real], np.asarray(std(second))[real], rtol=1e-6)
    np.testing.assert_allclose(np.log(np.asarray(std(first))[real]), -2.0, atol=1e-4)
    grads = jax.jit(jax.grad(lambda p: actor.apply(p, first).log_prob(jnp.zeros(first.action_mask.shape)).sum()))(
        params
    )
    shared = [g for path, g in jax.tree_util.tree_leaves_with_path(grads) if "shared_log_std" in str(path)]
    assert len(shared) == 1 and np.any(np.asarray(shared[0]) != 0)  # it learns


@pytest.mark.parametrize("activation, check", [("relu", lambda h: h.min() >= 0.0), ("tanh", lambda h: h.max() <= 1.0)])
def test_the_mlp_activation_is_the_configured_one(activation, check):
    """The hidden layer (SMALL has one) of the actor, critic and Q trunk applies `mlp_activation`:
    the MLP body's outputs lie in that nonlinearity's range, which GELU's (down to about -0.17,
    unbounded above) leaves."""
    config = NetworkConfig(kind="mlp", mlp_activation=activation, **SMALL)
    n = make_networks(config, LIMBS)
    obs = random_observation(3, BATCH, LIMBS)
    action = jnp.zeros(obs.action_mask.shape)
    q_trunk = MLPQTrunk(config, LIMBS)  # one of the twin Q networks (vmap keeps no intermediates)
    for module, args in ((n.actor, (obs,)), (n.critic, (obs,)), (q_trunk, (obs, action))):
        params = random_parameters(module, 5, *args)
        hidden = _body_outputs(module, params, *args)
        assert hidden and all(check(h) for h in hidden)
    gelu = make_networks(NetworkConfig(kind="mlp", **SMALL), LIMBS).critic
    params = random_parameters(gelu, 5, obs)
    assert not all(check(h) for h in _body_outputs(gelu, params, obs))


def _body_outputs(module, params, *args) -> list[np.ndarray]:
    """What the MLP body returns (its last hidden layer, after the activation)."""
    _, seen = module.apply(params, *args, capture_intermediates=True)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(seen["intermediates"]["body"]["__call__"])]


@pytest.mark.parametrize("kind", ["mlp_heading", "transformer", "set"])
def test_mean_init_scale_sets_how_far_the_first_policy_departs_from_zero_torque(kind):
    """By default a fresh actor's mean torque is near zero everywhere; at mean_init_scale 1/3
    (PyTorch's default layer initialisation, stable-baselines3's with ortho_init=False) it varies
    with the state, its spread about sqrt(1/3 / 1e-4) = 58 times the default's."""
    obs = random_observation(3, BATCH, LIMBS)
    real = np.asarray(obs.action_mask)
    spread = {}
    for scale in (1e-4, 1 / 3):
        actor = make_networks(NetworkConfig(kind=kind, mean_init_scale=scale, **SMALL), LIMBS).actor
        params = actor.init(jax.random.PRNGKey(0), obs)
        spread[scale] = np.asarray(actor.apply(params, obs).loc)[real].std()
    assert spread[1e-4] < 0.01
    assert spread[1 / 3] > 20 * spread[1e-4]
    with pytest.raises(ConfigError, match="mean_init_scale"):
        NetworkConfig(kind=kind, mean_init_scale=0.0)


def test_mlp_init_scale_scales_the_hidden_and_value_layers_only():
    """network.mlp_init_scale: at 1 (the default) the MLP layers are flax's LeCun normal; at 1/3
    (PyTorch's Linear variance) the same draws shrink by sqrt(3) in the hidden layers and the
    value head, and the action mean's layer (mean_init_scale) is untouched."""
    obs = random_observation(3, BATCH, LIMBS)
    params = {}
    for scale in (1.0, 1 / 3):
        nets = make_networks(NetworkConfig(kind="mlp", mlp_init_scale=scale, **SMALL), LIMBS)
        params[scale] = (nets.actor.init(jax.random.PRNGKey(0), obs), nets.critic.init(jax.random.PRNGKey(1), obs))
    key = jax.random.PRNGKey(7)  # the default draws exactly what a plain flax Dense draws
    np.testing.assert_array_equal(fan_in_init(1.0)(key, (16, 8)), nn.initializers.lecun_normal()(key, (16, 8)))
    for which, path in ((0, ("body", "hidden_0")), (1, ("body", "hidden_0")), (1, ("value",))):
        a, b = params[1.0][which]["params"], params[1 / 3][which]["params"]
        for key in path:
            a, b = a[key], b[key]
        np.testing.assert_allclose(np.asarray(a["kernel"]) / np.sqrt(3), b["kernel"], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        params[1.0][0]["params"]["mean"]["kernel"], params[1 / 3][0]["params"]["mean"]["kernel"]
    )
    with pytest.raises(ConfigError, match="mlp_init_scale"):
        NetworkConfig(kind="mlp", mlp_init_scale=0.0)
