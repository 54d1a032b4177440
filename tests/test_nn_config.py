"""NetworkConfig validation, the factory, and the parameter budget of the defaults."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from equirl.config_io import from_dict
from equirl.errors import ConfigError
from equirl.nn import KINDS, NetworkConfig, count_parameters, make_networks
from helpers.synthetic import random_observation


@pytest.mark.parametrize(
    "fields, name",
    [
        ({"kind": "cnn"}, "kind"),
        ({"width": 0}, "width"),
        ({"depth": 1.5}, "depth"),
        ({"heads": True}, "heads"),
        ({"width": 30, "heads": 4}, "width"),
        ({"vector_channels": 6, "heads": 4}, "vector_channels"),
        ({"invariant_channels": -1}, "invariant_channels"),
        ({"mlp_hidden": ()}, "mlp_hidden"),
        ({"mlp_hidden": (64, 0)}, "mlp_hidden"),
        ({"squash": 1}, "squash"),
        ({"mlp_activation": "swish"}, "mlp_activation"),
        ({"log_std_init": float("nan")}, "log_std_init"),
        ({"log_std_init": 2.0}, "log_std_init"),
        ({"log_std_min": 0.0, "log_std_max": -1.0}, "log_std_init"),
    ],
)
def test_bad_values_name_the_field(fields, name):
    with pytest.raises(ConfigError, match=name):
        NetworkConfig(**fields)


def test_from_dict_and_yaml_lists():
    config = from_dict(NetworkConfig, {"kind": "transformer", "mlp_hidden": [64, 64], "squash": True})
    assert config.mlp_hidden == (64, 64) and config.squash
    with pytest.raises(ConfigError, match="widht"):
        from_dict(NetworkConfig, {"widht": 3})


def test_factory_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="max_limbs"):
        make_networks(NetworkConfig(), 0)
    with pytest.raises(ConfigError, match="NetworkConfig"):
        make_networks({"kind": "set"}, 16)


def shapes(kind: str, **fields):
    nets = make_networks(NetworkConfig(kind=kind, **fields), 16)
    obs = random_observation(0, 2, 16)
    action = jnp.zeros(obs.action_mask.shape)
    key = jax.random.PRNGKey(0)
    return (
        jax.eval_shape(nets.actor.init, key, obs),
        jax.eval_shape(nets.critic.init, key, obs),
        jax.eval_shape(nets.q.init, key, obs, action),
    )


def test_default_set_actor_is_lean():
    actor, critic, q = shapes("set")
    # SGRL's actor has 4.7M parameters; ours stays under 1M.
    assert count_parameters(actor) <= 1_000_000
    assert count_parameters(q) == pytest.approx(2 * count_parameters(critic), rel=0.05)  # a twin


def test_every_kind_has_the_same_interface():
    obs = random_observation(1, 2, 16)
    action = jnp.zeros(obs.action_mask.shape)
    for kind in KINDS:
        config = NetworkConfig(kind=kind, width=8, depth=1, heads=2, vector_channels=2, mlp_hidden=(8,))
        nets = make_networks(config, 16)
        key = jax.random.PRNGKey(0)
        dist = jax.eval_shape(lambda o: nets.actor.apply(nets.actor.init(key, o), o).sample(seed=key), obs)
        value = jax.eval_shape(lambda o: nets.critic.apply(nets.critic.init(key, o), o), obs)
        q = jax.eval_shape(lambda o, a: nets.q.apply(nets.q.init(key, o, a), o, a), obs, action)
        assert (dist.shape, value.shape, q.shape) == ((2, 16, 3), (2,), (2, 2)), kind


def test_the_q_network_may_have_its_own_kind_and_width():
    from equirl.nn.baselines import MLPQ
    from equirl.nn.set_networks import SETQ, SETActor

    with pytest.raises(ConfigError, match="q_kind='cnn': must be 'same' or one of"):
        NetworkConfig(q_kind="cnn")
    with pytest.raises(ConfigError, match="q_width=30: must be divisible by heads=4"):
        NetworkConfig(q_width=30)
    cheap = make_networks(NetworkConfig(kind="set", q_kind="mlp_heading", mlp_hidden=(8,)), 5)
    assert isinstance(cheap.actor, SETActor) and isinstance(cheap.q, MLPQ) and cheap.q.heading
    narrow = make_networks(NetworkConfig(kind="set", width=64, heads=4, q_width=32), 5)
    assert isinstance(narrow.q, SETQ) and narrow.actor.config.width == 64 and narrow.q.config.width == 32
    # The cheap critic trains beside the SET actor: Q of (obs, action) for a batch.
    obs = random_observation(0, 3, 5)
    action = jnp.zeros(obs.action_mask.shape)
    params = jax.jit(cheap.q.init)(jax.random.PRNGKey(0), obs, action)
    assert jax.jit(cheap.q.apply)(params, obs, action).shape == (3, 2)
