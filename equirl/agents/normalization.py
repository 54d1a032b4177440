"""Observation normalisation that keeps the symmetry.

A per-coordinate running mean and std of world-frame vectors would break
O_g(3)-equivariance: x and y would get different scales, and a mean shift
moves the origin. Here scalars are normalised per feature (they are
invariant, anything goes), while each vector channel is only divided by one
running RMS of its length. A rotation or reflection g commutes with a
positive scale, so normalise(g x) = g normalise(x) exactly.

Statistics count real limbs only (padding is excluded), and are merged with
the parallel form of Welford's update, so any batch size works.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from equirl.observation import Observation

EPS = 1e-8


@struct.dataclass
class NormalizerState:
    count: jax.Array  # number of real limbs seen
    scalar_mean: jax.Array  # [17]
    scalar_m2: jax.Array  # [17] sum of squared deviations
    vector_sq: jax.Array  # [8] mean squared length per vector channel


def init(num_vectors: int, num_scalars: int) -> NormalizerState:
    return NormalizerState(
        count=jnp.zeros(()),
        scalar_mean=jnp.zeros(num_scalars),
        scalar_m2=jnp.zeros(num_scalars),
        vector_sq=jnp.zeros(num_vectors),
    )


def update(state: NormalizerState, obs: Observation) -> NormalizerState:
    """Merge the real limbs of a batch of observations into the running statistics."""
    mask = obs.limb_mask.reshape(-1).astype(jnp.float32)
    scalars = obs.scalars.reshape(-1, obs.scalars.shape[-1])
    sq_len = jnp.sum(jnp.square(obs.vectors), -1).reshape(-1, obs.vectors.shape[-2])
    n = jnp.sum(mask)
    safe_n = jnp.maximum(n, 1.0)
    mean = jnp.sum(scalars * mask[:, None], 0) / safe_n
    m2 = jnp.sum(jnp.square(scalars - mean) * mask[:, None], 0)
    vec = jnp.sum(sq_len * mask[:, None], 0) / safe_n

    total, scalar_mean, scalar_m2 = _merge_moments(state.count, state.scalar_mean, state.scalar_m2, n, mean, m2)
    return NormalizerState(
        count=total,
        scalar_mean=scalar_mean,
        scalar_m2=scalar_m2,
        vector_sq=state.vector_sq + (vec - state.vector_sq) * n / jnp.maximum(total, 1.0),
    )


def update_until(state: NormalizerState, obs: Observation, env_steps, freeze_at: int) -> NormalizerState:
    """`update`, until `env_steps` (collected before this batch) reaches freeze_at; from then
    on the statistics stay as they are (freeze_at 0: never frozen)."""
    updated = update(state, obs)
    if freeze_at <= 0:
        return updated
    frozen = env_steps >= freeze_at
    return jax.tree.map(lambda old, new: jnp.where(frozen, old, new), state, updated)


def _merge_moments(count, mean, m2, n, batch_mean, batch_m2):
    """(count, mean, sum of squared deviations) of two samples merged: Welford's parallel form."""
    total = count + n
    safe_total = jnp.maximum(total, 1.0)
    delta = batch_mean - mean
    return total, mean + delta * n / safe_total, m2 + batch_m2 + jnp.square(delta) * count * n / safe_total


def normalize(state: NormalizerState, obs: Observation, clip: float = 10.0, std_floor: float = 0.0) -> Observation:
    """Scalars to zero mean, unit std (clipped); vectors divided by their channel's RMS length.

    std_floor: scalars are divided by at least this (in the channel's own units). A channel
    that barely moves (a passive hinge's angle: std 0.003-0.006 rad on the pitch-only hopper)
    is otherwise multiplied by hundreds, its jitter turned into inputs of order one.
    Before any statistics were gathered (count 0) it is the identity."""
    seen = state.count > 0  # before any data: the identity
    std = jnp.sqrt(state.scalar_m2 / jnp.maximum(state.count, 1.0) + EPS)
    std = jnp.where(seen, jnp.maximum(std, std_floor), 1.0)
    scalars = jnp.clip((obs.scalars - state.scalar_mean) / std, -clip, clip)
    rms = jnp.where(seen, jnp.sqrt(state.vector_sq + EPS), 1.0)
    vectors = obs.vectors / rms[:, None]
    mask = obs.limb_mask
    return obs.replace(
        scalars=jnp.where(mask[..., None], scalars, 0.0),
        vectors=jnp.where(mask[..., None, None], vectors, 0.0),
    )


@struct.dataclass
class ReturnScaleState:
    """Running std of the discounted return, to scale rewards by (gymnasium's
    NormalizeReward, stable-baselines3's VecNormalize): a reward's size then no
    longer depends on the task's units or on how long episodes have become."""

    per_env: jax.Array  # [B] discounted return of each environment's episode so far
    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def return_scale_init(num_envs: int) -> ReturnScaleState:
    zero = jnp.zeros(())
    return ReturnScaleState(per_env=jnp.zeros(num_envs), count=zero, mean=zero, m2=zero)


def scale_rewards(
    state: ReturnScaleState, rewards: jax.Array, done: jax.Array, gamma: float, clip: float = 10.0
) -> tuple[ReturnScaleState, jax.Array]:
    """Rewards [T, B] divided by the running std of the discounted returns they add up to
    (clipped to +-clip), and the statistics with this rollout's returns merged in.
    A return restarts after a step that ended its episode (`done`)."""

    def accumulate(ret, x):
        r, d = x
        ret = gamma * ret + r
        return jnp.where(d, 0.0, ret), ret

    per_env, returns = jax.lax.scan(accumulate, state.per_env, (rewards, done))
    mean = jnp.mean(returns)
    n, m2 = jnp.asarray(returns.size, jnp.float32), jnp.sum(jnp.square(returns - mean))
    count, mean, m2 = _merge_moments(state.count, state.mean, state.m2, n, mean, m2)
    std = jnp.sqrt(m2 / count + EPS)
    return ReturnScaleState(per_env=per_env, count=count, mean=mean, m2=m2), jnp.clip(rewards / std, -clip, clip)
