"""Output heads shared by every network kind.

- `torque_distribution`: per-limb torque means and raw log-std features ->
  a `MaskedGaussian` (tanh-squashed for SAC), masked by the action mask.
- `LogStdHead`: an invariant log standard deviation, state-dependent or shared.
- `PooledValueHead`: a scalar from per-limb invariant features, averaged over
  real limbs only (so padding never changes it).
- `twin`: two independent copies of a Q trunk, run as one vmapped module.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.nn.batch_renorm import BatchRenorm
from equirl.nn.config import NetworkConfig
from equirl.nn.distributions import MaskedGaussian
from equirl.nn.vector_ops import masked_mean


def fan_in_init(scale: float) -> nn.initializers.Initializer:
    """Truncated normal of variance scale / fan-in (scale 1: flax's default, LeCun normal)."""
    return nn.initializers.variance_scaling(scale, "fan_in", "truncated_normal")


SMALL_INIT = fan_in_init(1e-4)


def mean_init(config: NetworkConfig) -> nn.initializers.Initializer:
    """The action mean's output-layer initialiser (`config.mean_init_scale`; SMALL_INIT by default)."""
    return fan_in_init(config.mean_init_scale)


def soft_log_std(raw: jax.Array, config: NetworkConfig) -> jax.Array:
    """Map raw in R to (log_std_min, log_std_max), with raw = 0 -> log_std_init.

    A shifted sigmoid: smooth, with a gradient everywhere (a hard clip has none
    outside its range).
    """
    lo, hi = config.log_std_min, config.log_std_max
    p = (config.log_std_init - lo) / (hi - lo)
    return lo + (hi - lo) * jax.nn.sigmoid(raw + math.log(p / (1.0 - p)))


def torque_distribution(mean: jax.Array, raw_log_std: jax.Array, mask: jax.Array, config: NetworkConfig):
    """The action distribution over [..., L, 3] torques; `mask` marks driven dimensions."""
    return MaskedGaussian(mean, soft_log_std(raw_log_std, config), mask, squash=config.squash)


class LogStdHead(nn.Module):
    """Raw log-std [..., L, 3] from per-limb invariant features (near zero at
    init, so the log-std starts near log_std_init); with `state_dependent`
    false, one learned raw log-std per hinge slot, the same for every limb and
    state (invariant either way)."""

    state_dependent: bool = True

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        if not self.state_dependent:
            raw = self.param("shared_log_std", nn.initializers.zeros, (3,))
            return jnp.broadcast_to(raw, features.shape[:-1] + (3,))
        return nn.Dense(3, kernel_init=SMALL_INIT, name="log_std")(features)


def q_norm(config: NetworkConfig, name: str, default: str = "none") -> nn.Module | None:
    """The normaliser `config.q_norm` puts into a Q network ("default": the kind's own choice)."""
    kind = default if config.q_norm == "default" else config.q_norm
    if kind == "batch_renorm":
        return BatchRenorm(config.renorm_momentum, config.renorm_warmup, name=name)
    if kind == "layer":
        return nn.LayerNorm(name=name)
    return None


class PooledValueHead(nn.Module):
    """Average per-limb features over real limbs, then an MLP to a scalar (or `outputs` numbers).

    The pooled features pass through a LayerNorm, or through whatever `norm`
    names (a Q network's `q_norm`: batch renorm for CrossQ)."""

    hidden: int
    outputs: int = 1
    norm: NetworkConfig | None = None  # a Q head: take the normaliser from config.q_norm

    @nn.compact
    def __call__(self, features: jax.Array, limb_mask: jax.Array) -> jax.Array:
        pooled = masked_mean(features, limb_mask, axis=-2)
        norm = nn.LayerNorm(name="norm") if self.norm is None else q_norm(self.norm, "norm", default="layer")
        x = nn.gelu(nn.Dense(self.hidden, name="hidden")(norm(pooled) if norm is not None else pooled))
        out = nn.Dense(self.outputs, name="out")(x)
        return out[..., 0] if self.outputs == 1 else out


def twin(trunk: type[nn.Module]) -> type[nn.Module]:
    """A module class running two independently initialised copies of `trunk`
    on the same inputs, outputs stacked on a new last axis ([..., 2])."""
    return nn.vmap(
        trunk,
        # batch_stats: each copy keeps its own (batch renorm in CrossQ's critic).
        variable_axes={"params": 0, "batch_stats": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=-1,
        axis_size=2,
    )


def count_parameters(params: Any) -> int:
    """Number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def action_mask(obs) -> jax.Array:
    """The action dimensions that drive something: the observation's action mask on real limbs."""
    return obs.action_mask & obs.limb_mask[..., None]


def masked_actions(action: jax.Array, mask: jax.Array) -> jax.Array:
    """Zero the actions nothing drives (Q must not depend on them)."""
    return jnp.where(mask, action, 0.0)
