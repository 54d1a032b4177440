"""REMUL: an unconstrained world model that learns to be equivariant (Elhag et al., 2024).

The network is a plain transformer over limbs (equirl.nn.baselines'
TransformerBlock with the limb-tree bias): each limb's token holds its last
`history` frames (scaled world-frame vector coordinates as ordinary numbers,
z-scored scalars, the action taken at that frame, the torso's displacement
since the frame before, a "frame present" flag). It predicts per limb the
change of the dynamic channels, and from the torso token the torso's
displacement. Nothing in it is equivariant by construction; it is trained with

    alpha * L_task + beta * L_equi,
    L_task = normalized_error(f(x), y)
    L_equi = normalized_error(f(g.x), g.f(x))

where f(x) are the open-loop predictions of a window's frames after its first
config.context frames, y those frames, and g one random element of O_g(3) x
horizontal translations per window (the interface's static action
`act_on_sequence` / `act_on_frame`), so beta sets how equivariant it becomes.
Translations only move the torso position, which the model reads as
differences: translation equivariance is exact, rotation and reflection
equivariance learned.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.errors import ConfigError
from equirl.geometry import Isometry, random_isometry
from equirl.nn.baselines import TransformerBlock
from equirl.nn.config import NetworkConfig
from equirl.nn.heads import SMALL_INIT
from equirl.nn.tree_attention import TreeBias
from equirl.observation import Observation
from equirl.worldmodels.common import assemble, scaled_scalars, scaled_vectors
from equirl.worldmodels.interface import (
    DYNAMIC_SCALARS,
    DYNAMIC_VECTORS,
    FeatureStats,
    Frame,
    Sequence,
    WorldModel,
    WorldModelConfig,
    act_on_frame,
    act_on_sequence,
    normalized_error,
    rollout,
)

# Per limb: the dynamic vector channels' coordinates and the dynamic scalars.
DYNAMIC_FEATURES = 3 * len(DYNAMIC_VECTORS) + len(DYNAMIC_SCALARS)
TORSO = 0


# --- shared by the unconstrained models (remul, invariant_latent) -----------------------


def limb_tokens(obs: Observation, stats: FeatureStats) -> jax.Array:
    """[..., L, 8*3 + 17 + 1]: every vector coordinate (scaled by its channel's RMS)
    as a plain number, the z-scored scalars and the limb mask; zero at padding."""
    vectors = scaled_vectors(obs, stats)
    parts = [vectors.reshape(vectors.shape[:-2] + (-1,)), scaled_scalars(obs, stats), obs.limb_mask[..., None]]
    return jnp.concatenate([p.astype(vectors.dtype) for p in parts], -1)


def split_dynamic(out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-limb outputs [..., L, DYNAMIC_FEATURES] -> (vectors [..., L, 7, 3], scalars [..., L, 7])."""
    n = 3 * len(DYNAMIC_VECTORS)
    return out[..., :n].reshape(out.shape[:-1] + (len(DYNAMIC_VECTORS), 3)), out[..., n:]


def tree_config(config: WorldModelConfig) -> NetworkConfig:
    """The transformer sizes of equirl.nn for a world-model config."""
    return NetworkConfig(kind="transformer", width=config.width, depth=config.depth, heads=config.heads)


def check_window(config: WorldModelConfig, batch: Sequence) -> None:
    """The loss conditions on config.context frames and predicts the rest: the window must be longer."""
    if batch.length <= config.context:
        raise ConfigError(
            f"model.context={config.context}: training windows of {batch.length} frames leave nothing to predict"
        )


class LimbTransformer(nn.Module):
    """tokens [..., L, F] -> features [..., L, width]: an MLP embedding, `depth`
    pre-norm transformer blocks over limbs (tree bias, padding masked), a final norm."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, tokens: jax.Array, mask: jax.Array, parent: jax.Array) -> jax.Array:
        cfg = self.config
        h = nn.Dense(cfg.width, name="embed_out")(nn.gelu(nn.Dense(cfg.width, name="embed_in")(tokens)))
        h = jnp.where(mask[..., None], h, 0.0)
        bias = TreeBias(cfg.heads, cfg.max_tree_distance, name="tree_bias")(parent)
        for i in range(cfg.depth):
            h = TransformerBlock(cfg, name=f"block_{i}")(h, bias, mask)
        return jnp.where(mask[..., None], nn.LayerNorm(name="final_norm")(h), 0.0)


# --- the REMUL network ----------------------------------------------------------------


class RemulNet(nn.Module):
    """History tokens [..., L, H*F] -> (per-limb change [..., L, DYNAMIC_FEATURES],
    torso displacement [..., 3] in units of stats.displacement_rms)."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, tokens, mask, parent):
        h = LimbTransformer(self.config, name="trunk")(tokens, mask, parent)
        change = nn.Dense(DYNAMIC_FEATURES, kernel_init=SMALL_INIT, name="change")(h)
        displacement = nn.Dense(3, kernel_init=SMALL_INIT, name="displacement")(h[..., TORSO, :])
        return jnp.where(mask[..., None], change, 0.0), displacement


class History(NamedTuple):
    """The last H frames: obs leaves [B, H, L, ...], torso_position [B, H, 3],
    actions [B, H, L, 3] (the last slot is filled by `step`), present [B, H] bool."""

    obs: Observation
    torso_position: jax.Array
    actions: jax.Array
    present: jax.Array


def frame_tokens(history: History, stats: FeatureStats) -> jax.Array:
    """[B, L, H * F] tokens: per frame limb_tokens, the action, the torso's
    displacement since the frame before (zero for the first) and the present flag."""
    per_frame = limb_tokens(history.obs, stats)  # [B, H, L, 42]
    position = history.torso_position
    step = position - jnp.concatenate([position[:, :1], position[:, :-1]], 1)
    step = jnp.where((history.present & jnp.roll(history.present, 1, 1)).at[:, 0].set(False)[..., None], step, 0.0)
    limbs = per_frame.shape[2]
    shape = step.shape[:2] + (limbs, 3)
    present = jnp.broadcast_to(history.present[:, :, None, None], shape[:-1] + (1,)).astype(per_frame.dtype)
    actions = jnp.where(history.obs.action_mask & history.obs.limb_mask[..., None], history.actions, 0.0)
    parts = [per_frame, actions, jnp.broadcast_to(step[:, :, None] / stats.displacement_rms, shape), present]
    tokens = jnp.concatenate(parts, -1) * present
    return jnp.moveaxis(tokens, 1, 2).reshape(tokens.shape[0], limbs, -1)


def _last(history: History) -> Frame:
    return Frame(jax.tree.map(lambda x: x[:, -1], history.obs), history.torso_position[:, -1])


def _padded_history(seq: Sequence, history: int) -> History:
    """The last `history` frames of seq (fewer: zero frames in front, not present);
    actions are those of seq (the caller overwrites the last one)."""
    length = seq.length
    take = min(length, history)
    cut = seq.frames(length - take, length)
    pad = history - take

    def front(x):
        return jnp.concatenate([jnp.zeros((x.shape[0], pad) + x.shape[2:], x.dtype), x], 1)

    present = jnp.broadcast_to(jnp.arange(history) >= pad, (seq.actions.shape[0], history))
    return History(jax.tree.map(front, cut.obs), front(cut.torso_position), front(cut.actions), present)


class RemulParts(NamedTuple):
    """REMUL's pieces: `objective(params, batch, key, alpha, beta)` is the loss for any
    weights (traced values are fine: one compiled program can train a sweep of beta);
    `predictions(params, batch)` the open-loop frames after the context."""

    model: WorldModel
    objective: Callable
    predictions: Callable


def remul_parts(config: WorldModelConfig, stats: FeatureStats) -> RemulParts:
    """The REMUL world model (see the module doc) and its weighted objective."""
    options = config.remul
    h, context = options.history, config.context
    net = RemulNet(tree_config(config))

    def predict(params, history: History) -> Frame:
        """The frame after the history's last, given its last action."""
        last = _last(history)
        change, displacement = net.apply(params, frame_tokens(history, stats), last.obs.limb_mask, last.obs.parent)
        vectors, scalars = split_dynamic(change)
        return assemble(last, vectors, scalars, last.torso_position + displacement * stats.displacement_rms, stats)

    def init(key, batch: Sequence):
        history = _padded_history(batch.frames(0, 1), h)
        last = _last(history)
        return net.init(key, frame_tokens(history, stats), last.obs.limb_mask, last.obs.parent)

    def observe(params, context_frames: Sequence) -> History:
        del params
        return _padded_history(context_frames, h)

    def step(params, carry: History, action: jax.Array):
        carry = carry._replace(actions=carry.actions.at[:, -1].set(action))
        frame = predict(params, carry)
        shift = lambda old, new: jnp.concatenate([old[:, 1:], new[:, None]], 1)  # noqa: E731
        carry = History(
            jax.tree.map(shift, carry.obs, frame.obs),
            shift(carry.torso_position, frame.torso_position),
            shift(carry.actions, jnp.zeros_like(action)),
            shift(carry.present, jnp.ones_like(carry.present[:, 0])),
        )
        return frame, carry

    def predictions(params, batch: Sequence) -> Frame:
        """Open-loop predictions of frames context..T-1: leaves [B, T - context, ...]."""
        return rollout(model, params, batch.frames(0, context), batch.actions[:, context - 1 : -1])

    def objective(params, batch: Sequence, key, alpha, beta):
        check_window(config, batch)
        later = batch.frames(context, batch.length)
        predicted = predictions(params, batch)
        task = jnp.mean(normalized_error(predicted, Frame(later.obs, later.torso_position), stats)["total"])
        g = random_isometry(key, (batch.actions.shape[0],))  # one element per window
        moved = predictions(params, act_on_sequence(g, batch))
        per_time = Isometry(g.rotation[:, None], g.translation[:, None])
        equi = jnp.mean(normalized_error(moved, act_on_frame(per_time, predicted), stats)["total"])
        total = alpha * task + beta * equi
        return total, {"loss/task": task, "loss/equivariance": equi, "loss/total": total}

    def loss(params, batch: Sequence, key):
        return objective(params, batch, key, options.task_weight, options.equivariance_weight)

    model = WorldModel(init=init, loss=loss, observe=observe, step=step)
    return RemulParts(model=model, objective=objective, predictions=predictions)


def make_remul(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    """The REMUL world model with options config.remul (alpha, beta, history)."""
    return remul_parts(config, stats).model
