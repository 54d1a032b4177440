"""Batch renormalisation: batch norm during warm-up, clipped corrections after, statistics in train mode only."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from equirl.nn.batch_renorm import BatchRenorm

EPS = 1e-3


def batch(seed: int, mean: float = 0.0, std: float = 1.0, n: int = 64, features: int = 5):
    return jnp.asarray(np.random.default_rng(seed).normal(mean, std, (n, features)), jnp.float32)


def test_warm_up_is_batch_norm():
    x = batch(0, 3.0, 2.0)
    module = BatchRenorm(warmup_steps=5)
    variables = module.init(jax.random.key(0), x)
    reference = nn.BatchNorm(use_running_average=False, momentum=0.99, epsilon=EPS)
    ref_vars = reference.init(jax.random.key(0), x)
    for _ in range(3):  # three train steps, all inside the warm-up
        y, updated = module.apply(variables, x, mutable=["batch_stats"])
        y_ref, ref_updated = reference.apply(ref_vars, x, mutable=["batch_stats"])
        np.testing.assert_allclose(y, y_ref, atol=2e-5)
        variables = {**variables, **updated}
        ref_vars = {**ref_vars, **ref_updated}
    # The running statistics follow batch norm's too (momentum 0.99 kept).
    np.testing.assert_allclose(variables["batch_stats"]["mean"], ref_vars["batch_stats"]["mean"], rtol=1e-5)
    assert int(variables["batch_stats"]["steps"]) == 3


def test_running_statistics_move_in_train_mode_only():
    x = batch(1, 2.0, 3.0)
    module = BatchRenorm(momentum=0.9)
    variables = module.init(jax.random.key(0), x)
    stats = variables["batch_stats"]
    np.testing.assert_array_equal(stats["mean"], 0.0)
    np.testing.assert_array_equal(stats["var"], 1.0)

    # Eval mode: normalised with the running statistics, nothing can change.
    y = module.apply(variables, x)
    np.testing.assert_allclose(y, x / np.sqrt(1.0 + EPS), rtol=1e-6)

    _, updated = module.apply(variables, x, mutable=["batch_stats"])
    new = updated["batch_stats"]
    mean, var = np.mean(np.asarray(x), 0), np.var(np.asarray(x), 0)
    np.testing.assert_allclose(new["mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(new["var"], 0.9 + 0.1 * var, rtol=1e-5)
    assert int(new["steps"]) == 1


def test_after_warm_up_r_and_d_are_clipped_and_held_constant():
    module = BatchRenorm(warmup_steps=0, r_max=3.0, d_max=5.0)
    x = batch(2, 100.0, 10.0)  # far from the running statistics (mean 0, var 1)
    variables = module.init(jax.random.key(0), x)
    y, _ = module.apply(variables, x, mutable=["batch_stats"])
    xn = np.asarray(x)
    normalised = (xn - xn.mean(0)) / np.sqrt(xn.var(0) + EPS)
    # r = std_B / std_R ~ 10 -> clipped to 3; d = (mean_B - mean_R) / std_R ~ 100 -> clipped to 5.
    np.testing.assert_allclose(y, normalised * 3.0 + 5.0, rtol=1e-4, atol=1e-4)

    # Within the clip range: r and d are the exact ratios.
    close = batch(3, 0.5, 1.5)
    y, _ = module.apply(variables, close, mutable=["batch_stats"])
    c = np.asarray(close)
    std_r = np.sqrt(1.0 + EPS)
    r, d = np.sqrt(c.var(0) + EPS) / std_r, c.mean(0) / std_r
    np.testing.assert_allclose(y, (c - c.mean(0)) / np.sqrt(c.var(0) + EPS) * r + d, rtol=1e-4, atol=1e-5)

    # r and d carry no gradient: d(sum y)/dx is zero, as for batch norm (the batch mean absorbs it).
    def total(x):
        return module.apply(variables, x, mutable=["batch_stats"])[0].sum()

    np.testing.assert_allclose(jax.grad(total)(close), 0.0, atol=1e-4)


def test_the_mlp_critic_renormalises_after_the_activation_where_configured():
    """network.q_norm_after_activation puts renorm after each activation (sbx's CrossQ): in
    train mode the hidden features leave with zero batch mean and unit variance. By default it
    sits before the activation, and GELU's output keeps a positive mean."""
    from equirl.nn import NetworkConfig
    from equirl.nn.baselines import MLPBody

    x = batch(3, 1.0, 3.0)
    for after in (True, False):
        config = NetworkConfig(kind="mlp", q_norm="batch_renorm", q_input_norm=False, q_norm_after_activation=after)
        body = MLPBody((8, 8), norm=config, activation="gelu")
        y, _ = body.apply(body.init(jax.random.key(0), x), x, mutable=["batch_stats"])
        mean, var = np.asarray(y.mean(0)), np.asarray(y.var(0))
        if after:
            np.testing.assert_allclose(mean, 0.0, atol=1e-5)
            assert np.all((var > 0.9) & (var <= 1.0))
        else:
            assert mean.mean() > 0.15
