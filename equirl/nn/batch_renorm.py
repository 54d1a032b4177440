"""Batch renormalisation (Ioffe, 2017), the normaliser of CrossQ's critic.

Flax has batch norm but no batch renorm (flax#3822), so it is written here.

Train mode -- when the "batch_stats" collection is mutable, i.e. the caller
passes `mutable=["batch_stats"]` -- normalises with the batch's own mean and
standard deviation, corrected towards the running statistics:

    y = (x - mean_B) / std_B * r + d
    r = clip(std_B / std_R, 1/r_max, r_max),  d = clip((mean_B - mean_R) / std_R, -d_max, d_max)

with r and d held constant in the gradient. For the first `warmup_steps`
train calls r = 1 and d = 0: plain batch norm. Each train call moves the
running statistics by (1 - momentum) towards the batch's; a momentum near 1
keeps them slow (CrossQ uses 0.99; the wrong convention, 0.01 kept, is the
known way to make the critic diverge).

Eval mode (the collection not mutable) normalises with the running
statistics and changes nothing, so acting and the actor's loss see a fixed
critic. The mode follows the mutability rather than a call argument, so the
twin-Q `nn.vmap` wrapper and every network kind keep one call signature.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class BatchRenorm(nn.Module):
    """Normalise the last axis over every other axis (the batch)."""

    momentum: float = 0.99
    warmup_steps: int = 100_000
    r_max: float = 3.0
    d_max: float = 5.0
    epsilon: float = 1e-3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        running_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        running_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        steps = self.variable("batch_stats", "steps", lambda: jnp.zeros((), jnp.int32))
        scale = self.param("scale", nn.initializers.ones, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))

        running_std = jnp.sqrt(running_var.value + self.epsilon)
        if self.is_mutable_collection("batch_stats") and not self.is_initializing():
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)
            std = jnp.sqrt(var + self.epsilon)
            r = jax.lax.stop_gradient(jnp.clip(std / running_std, 1.0 / self.r_max, self.r_max))
            d = jax.lax.stop_gradient(jnp.clip((mean - running_mean.value) / running_std, -self.d_max, self.d_max))
            warm = steps.value < self.warmup_steps
            r = jnp.where(warm, 1.0, r)
            d = jnp.where(warm, 0.0, d)
            y = (x - mean) / std * r + d
            keep = self.momentum
            running_mean.value = keep * running_mean.value + (1.0 - keep) * jax.lax.stop_gradient(mean)
            running_var.value = keep * running_var.value + (1.0 - keep) * jax.lax.stop_gradient(var)
            steps.value = steps.value + 1
        else:
            y = (x - running_mean.value) / running_std
        return y * scale + bias
