"""Pieces the world models share: normalised inputs, the open-loop loss, flat outputs for metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from equirl.nn.vector_ops import as_polar_channels, axial_from_images
from equirl.observation import HINGE_AXES, POLAR_CHANNELS, TARGET_CHANNEL, Observation
from equirl.worldmodels.interface import (
    DYNAMIC_SCALARS,
    DYNAMIC_VECTORS,
    FeatureStats,
    Frame,
    Sequence,
    WorldModel,
    normalized_error,
    rollout,
)


def scaled_vectors(obs: Observation, stats: FeatureStats) -> jax.Array:
    """[..., L, 8, 3] -> [..., L, 3, 8], each channel divided by its RMS length
    (one invariant scale per channel keeps rotations and reflections commuting)."""
    v = obs.vectors / stats.vector_rms[:, None]
    v = jnp.where(obs.limb_mask[..., None, None], v, 0.0)
    return jnp.swapaxes(v, -1, -2)


def target_direction(obs: Observation) -> jax.Array:
    """[..., L, 3]: each limb's unit target direction, zero at padding."""
    return jnp.where(obs.limb_mask[..., None], obs.vectors[..., TARGET_CHANNEL, :], 0.0)


def polar_features(obs: Observation, stats: FeatureStats) -> jax.Array:
    """[..., L, 3, 12]: `scaled_vectors` with every axial channel (angular velocity, hinge
    axes) replaced by its two polar images, so that an equivariant model that treats every
    channel as polar is equivariant to reflections with the physics' parity."""
    return as_polar_channels(jnp.swapaxes(scaled_vectors(obs, stats), -1, -2), target_direction(obs))


# A polar model predicts each dynamic channel as one polar vector, or two (the images) if axial.
POLAR_OUTPUTS = sum(1 if i in POLAR_CHANNELS else 2 for i in DYNAMIC_VECTORS)


def dynamic_from_polar(out: jax.Array, target: jax.Array) -> jax.Array:
    """Polar predictions [..., L, 3, POLAR_OUTPUTS] -> dynamic vector channels [..., L, 7, 3]:
    polar channels as predicted, axial ones rebuilt from their images (`axial_from_images`)."""
    out = jnp.swapaxes(out, -1, -2)
    channels, k = [], 0
    for i in DYNAMIC_VECTORS:
        if i in POLAR_CHANNELS:
            channels.append(out[..., k, :])
            k += 1
        else:
            channels.append(axial_from_images(out[..., k : k + 2, :], target))
            k += 2
    return jnp.stack(channels, -2)


def scaled_scalars(obs: Observation, stats: FeatureStats) -> jax.Array:
    s = (obs.scalars - stats.scalar_mean) / stats.scalar_std
    return jnp.where(obs.limb_mask[..., None], s, 0.0)


def torque_vector(obs: Observation, action: jax.Array) -> jax.Array:
    """sum_k a_k axis_k per limb: the action as one equivariant vector [..., L, 3]."""
    a = jnp.where(obs.action_mask & obs.limb_mask[..., None], action, 0.0)
    return jnp.einsum("...kx,...k->...x", obs.vectors[..., HINGE_AXES, :], a)


def masked_action(obs: Observation, action: jax.Array) -> jax.Array:
    return jnp.where(obs.action_mask & obs.limb_mask[..., None], action, 0.0)


def assemble(
    last: Frame, vectors_delta: jax.Array, scalars_delta: jax.Array, position: jax.Array, stats: FeatureStats
) -> Frame:
    """The next frame from normalised deltas of the dynamic channels.

    vectors_delta [..., L, 7, 3] (units of each channel's RMS), scalars_delta
    [..., L, 7] (units of each scalar's std), position [..., 3] in metres.
    """
    dv = vectors_delta * stats.vector_rms[jnp.asarray(DYNAMIC_VECTORS)][:, None]
    ds = scalars_delta * stats.scalar_std[jnp.asarray(DYNAMIC_SCALARS)]
    obs = last.obs
    return with_dynamic(
        last, obs.vectors[..., DYNAMIC_VECTORS, :] + dv, obs.scalars[..., DYNAMIC_SCALARS] + ds, position
    )


def with_dynamic(last: Frame, vectors: jax.Array, scalars: jax.Array, position: jax.Array) -> Frame:
    """A frame with the dynamic channels given (vectors [..., L, 7, 3], scalars
    [..., L, 7]), static channels copied from `last`, padding limbs zero."""
    obs = last.obs
    mask = obs.limb_mask
    vectors = jnp.where(mask[..., None, None], obs.vectors.at[..., DYNAMIC_VECTORS, :].set(vectors), 0.0)
    scalars = jnp.where(mask[..., None], obs.scalars.at[..., DYNAMIC_SCALARS].set(scalars), 0.0)
    return Frame(obs.replace(vectors=vectors, scalars=scalars), position)


def window_error(model: WorldModel, params, batch: Sequence, context: int, stats: FeatureStats) -> dict:
    """normalized_error of an open-loop rollout of the rest of the window: dict of [B, k, ...]."""
    predicted = rollout(model, params, batch.frames(0, context), batch.actions[:, context - 1 : -1])
    target = Frame(jax.tree.map(lambda x: x[:, context:], batch.obs), batch.torso_position[:, context:])
    return normalized_error(predicted, target, stats)


def rollout_loss(model: WorldModel, params, batch: Sequence, context: int, stats: FeatureStats):
    """(loss, metrics): the mean z-scored error over every predicted frame of the window."""
    err = window_error(model, params, batch, context, stats)
    loss = jnp.mean(err["total"])
    return loss, {
        "loss/total": loss,
        "loss/position": jnp.mean(err["position"]),
        "loss/vectors": jnp.mean(err["vectors"]),
        "loss/scalars": jnp.mean(err["scalars"]),
    }


def frame_arrays(frame: Frame) -> tuple[jax.Array, jax.Array, jax.Array]:
    """What a metric compares: (vectors, scalars, torso_position)."""
    return frame.obs.vectors, frame.obs.scalars, frame.torso_position
