"""What every world model shares: the data types, the group action, the model interface, the registry.

Data
----
`Sequence` is a batch of fixed-length windows cut from recorded episodes
(never across an episode boundary):

  obs             Observation, leaves [B, T, L, ...] (vectors [B, T, L, 8, 3] in
                  the world frame, scalars [B, T, L, 17], limb_mask, parent,
                  action_mask)
  actions         [B, T, L, 3]: actions[:, t] is the action taken at frame t,
                  so (obs[:, t], actions[:, t]) -> obs[:, t + 1]
  torso_position  [B, T, 3]: the torso's world position (for the root-position
                  error in metres and the only channel translations act on)
  body            [B] int32: index into the dataset's list of bodies

`Frame` is one time step of the same (obs leaves [B, L, ...], torso_position
[B, 3]): what a model predicts.

How the group acts on a frame (`act_on_frame`, g an equirl.geometry.Isometry)
-----------------------------------------------------------------------------
  each observation vector channel by its parity (equirl.observation, the same
    action as `Observation.transform`): polar channels (relative positions from
    the torso, target direction, linear velocity) v -> R v, axial ones (angular
    velocity, hinge axes) v -> det(R) R v, so a reflection acts as the physics
    does. Gravity is fixed: R fixes the z axis, so R g = g.
  scalars, masks, parent: unchanged (angles and the height are invariant;
    translations are horizontal).
  torso_position p -> R p + t: the only absolute position; it rotates about
    the world origin and translates.
  actions: torques about the limbs' own hinge axes are invariant.

Observer flows (moving observers: rotations about z and horizontal translations
as functions of time) are in `equirl.worldmodels.flows`.

Model interface
---------------
A `WorldModel` is a NamedTuple of pure functions (jit them yourself):

  init(key, batch: Sequence) -> params
  loss(params, batch: Sequence, key) -> (scalar, metrics: dict of scalars)
  observe(params, context: Sequence) -> carry
      reads context.obs / torso_position at every frame 0..C-1 and
      context.actions at frames 0..C-2 (the action at the last context frame
      is the first one passed to `step`)
  step(params, carry, action [B, L, 3]) -> (Frame: the predicted next frame, carry)
      open loop: the carry holds what the model needs (its own predictions)

so `rollout(model, params, context, actions)` works for every model. Padding
limbs (limb_mask False) must be zero in every prediction; static channels
(gravity, joint ranges, limb type, masks, parent) are copied from the last
frame (`copy_static`). `normalized_error` is the shared per-feature z-scored
error (it is also the task loss), with `FeatureStats` from the training data.

Registry
--------
`make_world_model(config: WorldModelConfig, stats: FeatureStats) -> WorldModel`
imports the builder of `config.kind` lazily (table `BUILDERS`); a builder is
`make_<kind>(config, stats) -> WorldModel`. Options of one kind live in that
kind's options dataclass below.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from equirl.checks import check_float, check_int
from equirl.errors import ConfigError
from equirl.geometry import Isometry, act_on_vectors
from equirl.observation import DYNAMIC_SCALARS, DYNAMIC_VECTORS, NUM_SCALARS, NUM_VECTORS, Observation, parity_signs

# Channels that change over time (the rest are copied from the last frame): see the
# `dynamic` column of equirl.observation's channel tables.
STATIC_VECTORS = tuple(c for c in range(NUM_VECTORS) if c not in DYNAMIC_VECTORS)
STATIC_SCALARS = tuple(c for c in range(NUM_SCALARS) if c not in DYNAMIC_SCALARS)


# --- data types ---------------------------------------------------------------------


@struct.dataclass
class Sequence:
    """A batch of windows: obs leaves [B, T, L, ...], actions [B, T, L, 3],
    torso_position [B, T, 3], body [B] (see the module doc)."""

    obs: Observation
    actions: jax.Array
    torso_position: jax.Array
    body: jax.Array

    @property
    def length(self) -> int:
        return self.actions.shape[1]

    def frames(self, start: int, stop: int) -> "Sequence":
        """Frames start..stop-1 (static slice)."""
        cut = lambda x: x[:, start:stop]  # noqa: E731
        return Sequence(jax.tree.map(cut, self.obs), cut(self.actions), cut(self.torso_position), self.body)

    def frame(self, t: int) -> "Frame":
        return Frame(jax.tree.map(lambda x: x[:, t], self.obs), self.torso_position[:, t])


@struct.dataclass
class Frame:
    """One time step: obs leaves [B, L, ...] (or [B, K, L, ...] for stacked
    predictions), torso_position [B, 3] (or [B, K, 3])."""

    obs: Observation
    torso_position: jax.Array


@struct.dataclass
class FeatureStats:
    """Scales of the dynamic features, from training data.

    scalar_mean, scalar_std [17]: per scalar feature (std 1 for static ones).
    vector_rms [8]: per vector channel, the RMS of its length over real limbs:
      one rotation-invariant scale, so normalising keeps the symmetry.
    displacement_rms: RMS length of the torso's displacement per step (m).
    """

    scalar_mean: jax.Array
    scalar_std: jax.Array
    vector_rms: jax.Array
    displacement_rms: jax.Array

    @staticmethod
    def unit() -> "FeatureStats":
        return FeatureStats(jnp.zeros(NUM_SCALARS), jnp.ones(NUM_SCALARS), jnp.ones(NUM_VECTORS), jnp.ones(()))


# --- the group action on frames and sequences ---------------------------------------


def act_on_frame(g: Isometry, frame: Frame) -> Frame:
    """Static action (module doc): polar vectors -> R v, axial ones -> det(R) R v,
    torso position -> R p + t.

    g may carry leading axes that broadcast against the frame's leading axes
    (e.g. one element per time step: rotation [B, T, 3, 3] with obs [B, T, ...]).
    """
    rot = g.rotation
    signs = parity_signs(rot)[..., None, :, None]  # axial channels turn with det(R) R
    vectors = jnp.einsum("...ij,...lcj->...lci", rot, frame.obs.vectors) * signs
    position = act_on_vectors(rot, frame.torso_position) + g.translation
    return Frame(frame.obs.replace(vectors=vectors), position)


def act_on_sequence(g: Isometry, seq: Sequence) -> Sequence:
    """One static element (no batch axes, or [B]-batched) applied to every frame."""
    if g.rotation.ndim == 3:  # one element per sequence: broadcast over time
        g = Isometry(g.rotation[:, None], g.translation[:, None])
    moved = act_on_frame(g, Frame(seq.obs, seq.torso_position))
    return seq.replace(obs=moved.obs, torso_position=moved.torso_position)


# --- the model interface --------------------------------------------------------------


class WorldModel(NamedTuple):
    """A world model as pure functions (see the module doc)."""

    init: Callable[[jax.Array, Sequence], Any]
    loss: Callable[[Any, Sequence, jax.Array], tuple[jax.Array, dict]]
    observe: Callable[[Any, Sequence], Any]
    step: Callable[[Any, Any, jax.Array], tuple[Frame, Any]]


def rollout(model: WorldModel, params: Any, context: Sequence, actions: jax.Array) -> Frame:
    """Open-loop predictions of the k frames after the context: Frame with leaves [B, k, ...].

    actions [B, k, L, 3]: actions[:, 0] is the action at the last context frame.
    """
    carry = model.observe(params, context)

    def body(carry, action):
        frame, carry = model.step(params, carry, action)
        return carry, frame

    _, frames = jax.lax.scan(body, carry, jnp.swapaxes(actions, 0, 1))
    return jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), frames)


def copy_static(predicted: Observation, last: Observation) -> Observation:
    """`predicted` with static channels and masks taken from `last`, padding zeroed."""
    vectors = predicted.vectors.at[..., STATIC_VECTORS, :].set(last.vectors[..., STATIC_VECTORS, :])
    scalars = predicted.scalars.at[..., STATIC_SCALARS].set(last.scalars[..., STATIC_SCALARS])
    mask = last.limb_mask
    return last.replace(
        vectors=jnp.where(mask[..., None, None], vectors, 0.0), scalars=jnp.where(mask[..., None], scalars, 0.0)
    )


def normalized_error(pred: Frame, target: Frame, stats: FeatureStats):
    """Per-example squared errors of the dynamic features, each z-scored: dict of
    "vectors" [..., 7] (per dynamic vector channel, mean over real limbs of
    |dv|^2 / rms^2), "scalars" [..., 7] (per dynamic scalar, mean over real limbs
    of (ds / std)^2), "position" [...] (|dp|^2 / displacement_rms^2) and
    "total" [...] (the mean of the 15 feature errors); positions are compared directly."""
    mask = target.obs.limb_mask.astype(jnp.float32)  # [..., L]
    limbs = jnp.maximum(jnp.sum(mask, -1), 1.0)
    dv = pred.obs.vectors[..., DYNAMIC_VECTORS, :] - target.obs.vectors[..., DYNAMIC_VECTORS, :]
    rms = stats.vector_rms[jnp.asarray(DYNAMIC_VECTORS)]
    vec = jnp.sum(jnp.sum(dv * dv, -1) * mask[..., None], -2) / limbs[..., None] / jnp.square(rms)
    ds = pred.obs.scalars[..., DYNAMIC_SCALARS] - target.obs.scalars[..., DYNAMIC_SCALARS]
    std = stats.scalar_std[jnp.asarray(DYNAMIC_SCALARS)]
    sca = jnp.sum(jnp.square(ds / std) * mask[..., None], -2) / limbs[..., None]
    pos = jnp.sum(jnp.square(pred.torso_position - target.torso_position), -1) / jnp.square(stats.displacement_rms)
    total = (jnp.sum(vec, -1) + jnp.sum(sca, -1) + pos) / (len(DYNAMIC_VECTORS) + len(DYNAMIC_SCALARS) + 1)
    return {"vectors": vec, "scalars": sca, "position": pos, "total": total}


# --- configuration and registry ----------------------------------------------------------

BUILDERS = {
    "fernn": "equirl.worldmodels.fernn:make_fernn",
    "fernn_estimated_rate": "equirl.worldmodels.fernn:make_fernn_estimated_rate",
    "static_equivariant": "equirl.worldmodels.fernn:make_static_equivariant",
    "gru": "equirl.worldmodels.gru:make_gru",
    "invariant_latent": "equirl.worldmodels.invariant_latent:make_invariant_latent",
    "remul": "equirl.worldmodels.remul:make_remul",
}
KINDS = tuple(BUILDERS)


@dataclasses.dataclass(frozen=True)
class FERNNOptions:
    """yaw_rate_group: N; the hidden state is lifted over the N yaw rates
    2 pi k / N rad/step (k = 0..N-1), the cyclic group C_N, which makes the
    model exactly equivariant to each of those flows. static_equivariant
    (V = {0}) and fernn_estimated_rate (one copy turned at the measured rate)
    ignore it."""

    yaw_rate_group: int = 8

    def __post_init__(self):
        check_int("fernn.yaw_rate_group", self.yaw_rate_group, 1)


@dataclasses.dataclass(frozen=True)
class InvariantLatentOptions:
    """latent_dim: latent vectors per limb; invariant_weight: lambda of the
    invariant loss; reconstruction_weight: the decoder's loss weight."""

    latent_dim: int = 16
    invariant_weight: float = 1.0
    reconstruction_weight: float = 1.0

    def __post_init__(self):
        check_int("invariant_latent.latent_dim", self.latent_dim, 1)
        check_float("invariant_latent.invariant_weight", self.invariant_weight, 0.0)
        check_float("invariant_latent.reconstruction_weight", self.reconstruction_weight, 0.0)


@dataclasses.dataclass(frozen=True)
class RemulOptions:
    """task_weight (alpha) and equivariance_weight (beta) of REMUL's loss;
    history: frames of context the transformer attends to."""

    task_weight: float = 1.0
    equivariance_weight: float = 1.0
    history: int = 8

    def __post_init__(self):
        check_float("remul.task_weight", self.task_weight, 0.0)
        check_float("remul.equivariance_weight", self.equivariance_weight, 0.0)
        check_int("remul.history", self.history, 1)


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Which world model and how big.

    kind: one of KINDS. width: scalar features per limb; vector_channels: 3D
    vector features per limb (equivariant kinds); depth: layers / blocks;
    heads: attention heads (remul). context: frames `loss` conditions on (via
    observe); the rest of each training window is predicted open loop and
    scored with `normalized_error` (equirl.worldmodels.common.rollout_loss
    does exactly this). The options
    blocks hold kind-specific values.
    """

    kind: str = "fernn"
    context: int = 4
    width: int = 64
    vector_channels: int = 16
    depth: int = 1
    heads: int = 4
    fernn: FERNNOptions = dataclasses.field(default_factory=FERNNOptions)
    invariant_latent: InvariantLatentOptions = dataclasses.field(default_factory=InvariantLatentOptions)
    remul: RemulOptions = dataclasses.field(default_factory=RemulOptions)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"model.kind={self.kind!r}: must be one of {KINDS}")
        for name in ("context", "width", "vector_channels", "depth", "heads"):
            check_int(f"model.{name}", getattr(self, name), 1)
        if self.width % self.heads:
            raise ConfigError(f"model.width={self.width}: must be divisible by model.heads={self.heads}")


def make_world_model(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    """The WorldModel of config.kind (its module imported only now)."""
    if not isinstance(config, WorldModelConfig):
        raise ConfigError(f"model config: expected a WorldModelConfig, got {type(config).__name__}")
    module_name, function = BUILDERS[config.kind].split(":")
    return getattr(importlib.import_module(module_name), function)(config, stats)
