"""GRU baseline world model: no symmetry built in.

Each frame is flattened (vector coordinates read as plain numbers, scalars,
actions of every padded limb, the torso's last displacement) into one input
of a GRU; a linear readout predicts the deltas of the dynamic channels and
the torso's next displacement. Inputs use the same per-channel scales as the
equivariant models, so the comparison is about structure, not normalisation.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.worldmodels.common import assemble, masked_action, rollout_loss, scaled_scalars, scaled_vectors
from equirl.worldmodels.interface import (
    DYNAMIC_SCALARS,
    DYNAMIC_VECTORS,
    FeatureStats,
    Frame,
    Sequence,
    WorldModel,
    WorldModelConfig,
)


class GRUCore(nn.Module):
    """(hidden [B, H], flat input [B, I]) -> (hidden, vector deltas [B, L, 7, 3], scalar deltas [B, L, 7],
    displacement [B, 3])."""

    config: WorldModelConfig
    num_limbs: int

    @nn.compact
    def __call__(self, hidden, x):
        cfg = self.config
        x = nn.gelu(nn.Dense(cfg.width, name="embed")(x))
        for i in range(cfg.depth - 1):
            x = nn.gelu(nn.Dense(cfg.width, name=f"hidden_{i}")(x))
        hidden, out = nn.GRUCell(cfg.width, name="gru")(hidden, x)
        f = nn.gelu(nn.Dense(cfg.width, name="readout_hidden")(jnp.concatenate([out, x], -1)))
        l, nv, ns = self.num_limbs, len(DYNAMIC_VECTORS), len(DYNAMIC_SCALARS)
        y = nn.Dense(l * (nv * 3 + ns) + 3, kernel_init=nn.initializers.zeros, name="readout")(f)
        vectors = y[..., : l * nv * 3].reshape(y.shape[:-1] + (l, nv, 3))
        scalars = y[..., l * nv * 3 : -3].reshape(y.shape[:-1] + (l, ns))
        return hidden, vectors, scalars, y[..., -3:]


def _flat_input(frame: Frame, action: jax.Array, displacement: jax.Array, stats: FeatureStats) -> jax.Array:
    obs = frame.obs
    b = obs.limb_mask.shape[0]
    parts = [
        scaled_vectors(obs, stats).reshape(b, -1),
        scaled_scalars(obs, stats).reshape(b, -1),
        masked_action(obs, action).reshape(b, -1),
        displacement / stats.displacement_rms,
    ]
    return jnp.concatenate(parts, -1)


def make_gru(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    cores: dict[int, GRUCore] = {}

    def core_for(frame: Frame) -> GRUCore:
        limbs = frame.obs.limb_mask.shape[-1]
        return cores.setdefault(limbs, GRUCore(config, limbs))

    def initial_carry(frame: Frame):
        b = frame.torso_position.shape[0]
        return {"hidden": jnp.zeros((b, config.width)), "previous": frame.torso_position, "frame": frame}

    def advance(params, carry, action):
        frame = carry["frame"]
        x = _flat_input(frame, action, frame.torso_position - carry["previous"], stats)
        hidden, dv, ds, disp = core_for(frame).apply(params, carry["hidden"], x)
        mask = frame.obs.limb_mask
        dv = jnp.where(mask[..., None, None], dv, 0.0)
        ds = jnp.where(mask[..., None], ds, 0.0)
        predicted = assemble(frame, dv, ds, frame.torso_position + disp * stats.displacement_rms, stats)
        return predicted, {"hidden": hidden, "previous": frame.torso_position, "frame": predicted}

    def observe(params, context: Sequence):
        carry = initial_carry(context.frame(0))

        def body(carry, t):
            frame = jax.tree.map(lambda x: jnp.take(x, t, axis=1), Frame(context.obs, context.torso_position))
            _, carry = advance(params, dict(carry, frame=frame), jnp.take(context.actions, t, axis=1))
            return carry, None

        carry, _ = jax.lax.scan(body, carry, jnp.arange(context.length - 1))
        return dict(carry, frame=context.frame(context.length - 1))

    def init(key, batch: Sequence):
        frame = batch.frame(0)
        carry = initial_carry(frame)
        x = _flat_input(frame, batch.actions[:, 0], jnp.zeros_like(frame.torso_position), stats)
        return core_for(frame).init(key, carry["hidden"], x)

    model = WorldModel(init=init, loss=None, observe=observe, step=advance)

    def loss(params, batch: Sequence, key):
        del key
        return rollout_loss(model, params, batch, config.context, stats)

    return model._replace(loss=loss)
