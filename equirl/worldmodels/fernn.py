"""Flow-equivariant recurrent world model (FERNN) over SET-style limb channels.

The recurrent cell is a static O_g(3)-equivariant update of per-limb hidden
state -- invariant scalars h [L, D] and 3D vectors Z [L, 3, C] -- in the
style of SET: vectors are only mixed linearly, scaled by invariant gates and
read through inner products (Gram matrices with the fixed down direction and
the target direction), so rotating every input vector rotates Z and leaves h
unchanged. Limbs exchange messages through a mean over the body and the
parent limb.

Lifting (Keller, 2025): the hidden state gets one copy per flow nu in V.
Before each update, copy nu is transported by exp(nu) (Z rotated, the
remembered torso position moved), the input frame enters every copy
unchanged, weights are shared, and each copy predicts the next frame in its
own moving frame, transported by exp(nu) once more; the copies are pooled
by a softmax over invariant scores. With V a group this makes the model
flow-equivariant: an input sequence flowed by nu' in V permutes the copies
(copy nu now holds what copy nu - nu' held, transformed by exp(t nu')), so
the pooled prediction is transformed by exp(t nu'), exactly.

V here is the cyclic group of yaw rates 2 pi k / N rad/step (k = 0..N-1):
rotations by those angles compose modulo 2 pi, so V is closed and the
equivariance is exact, not only for interior flows. N = 1 is the static
model (kind "static_equivariant"). Velocity flows are not lifted (a finite
set of velocities is not a group): the model is exactly equivariant to
static translations and only approximately to velocity flows (measured in
the report).

The torso position enters only as the displacement p_t - exp(nu) p_{t-1}
and is predicted as exp(nu) (p_t + d) with d an equivariant vector; exp(nu)
turns about the first context frame's torso position, as the flows of
interface.apply_flow do, so static translations cancel too.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.geometry import act_on_vectors
from equirl.nn.vector_ops import GatedVectorMix, VectorDense, VectorNorm, gram_features
from equirl.worldmodels.common import (
    TARGET_CHANNEL,
    masked_action,
    rollout_loss,
    scaled_scalars,
    scaled_vectors,
    torque_vector,
    with_dynamic,
)
from equirl.worldmodels.interface import (
    DYNAMIC_SCALARS,
    DYNAMIC_VECTORS,
    FeatureStats,
    Frame,
    ObserverFlow,
    Sequence,
    WorldModel,
    WorldModelConfig,
    flow_element,
    horizontal,
)

INVARIANT_CHANNELS = 6


def yaw_rate_group(n: int) -> ObserverFlow:
    """The N flows of V: yaw rates 2 pi k / N rad/step, no velocity."""
    rates = 2.0 * jnp.pi * jnp.arange(n, dtype=jnp.float32) / n
    return ObserverFlow(rates, jnp.zeros((n, 3), jnp.float32))


def limb_mean(x: jax.Array, mask: jax.Array, feature_axes: int) -> jax.Array:
    """Mean of x [..., L, *F] over real limbs (mask [B, L] aligned with the axes before F)."""
    m = mask.reshape(mask.shape + (1,) * feature_axes).astype(x.dtype)
    axis = -1 - feature_axes
    return jnp.sum(x * m, axis=axis) / jnp.maximum(jnp.sum(m, axis=axis), 1.0)


def _parent_features(x: jax.Array, parent: jax.Array, axis_extra: int) -> jax.Array:
    """x [..., L, *F] gathered at each limb's parent (zeros for the torso and padding)."""
    index = jnp.maximum(parent, 0)
    index = index.reshape(index.shape + (1,) * axis_extra)
    index = jnp.broadcast_to(index, x.shape[: -1 - axis_extra] + index.shape[-1 - axis_extra :])
    gathered = jnp.take_along_axis(x, index, axis=-1 - axis_extra)
    has_parent = (parent >= 0).reshape(parent.shape + (1,) * axis_extra)
    return jnp.where(has_parent, gathered, 0.0)


class EquivariantCell(nn.Module):
    """(h, Z, vector inputs, scalar inputs, target, limb_mask, parent) -> (h, Z), O_g(3)-equivariant.

    Leading axes are free (copies of V x batch). Vectors [..., L, 3, C].
    """

    config: WorldModelConfig

    @nn.compact
    def __call__(self, h, z, vin, sin, target, mask, parent):
        cfg = self.config
        w, c = cfg.width, cfg.vector_channels
        zin = jnp.concatenate([z, vin], -1)
        inv = gram_features(VectorDense(INVARIANT_CHANNELS, name="gram_mix")(zin, target), target)
        s = nn.gelu(nn.Dense(w, name="embed")(jnp.concatenate([h, sin, inv], -1)))
        vec = VectorDense(c, name="vector_embed")(zin, target)
        for i in range(cfg.depth):
            # messages: the body's mean and the parent limb, for scalars and vectors alike
            s_ctx = jnp.concatenate([s, jnp.broadcast_to(limb_mean(s, mask, 1)[..., None, :], s.shape),
                                     _parent_features(s, parent, 1)], -1)
            v_ctx = jnp.concatenate([vec, jnp.broadcast_to(limb_mean(vec, mask, 2)[..., None, :, :], vec.shape),
                                     _parent_features(vec, parent, 2)], -1)
            s = s + nn.gelu(nn.Dense(w, name=f"message_{i}")(s_ctx))
            vec = vec + GatedVectorMix(c, c, name=f"vector_message_{i}")(v_ctx, target, s)
        gates = nn.sigmoid(nn.Dense(w + c, name="gates")(s))
        u_h, u_z = gates[..., :w], gates[..., w:]
        h_new = (1.0 - u_h) * h + u_h * jnp.tanh(nn.Dense(w, name="candidate")(s))
        z_cand = VectorNorm(name="vector_candidate_norm")(GatedVectorMix(c, c, name="vector_candidate")(
            jnp.concatenate([vec, zin], -1), target, s))
        z_new = (1.0 - u_z[..., None, :]) * z + u_z[..., None, :] * z_cand
        return jnp.where(mask[..., None], h_new, 0.0), jnp.where(mask[..., None, None], z_new, 0.0)


class Readout(nn.Module):
    """(h, Z, current vectors, target, mask) -> (vector deltas [..., L, 7, 3], scalar deltas
    [..., L, 7], torso displacement [..., 3] in units of its RMS, score [...])."""

    config: WorldModelConfig

    @nn.compact
    def __call__(self, h, z, vin, target, mask):
        cfg = self.config
        zin = jnp.concatenate([z, vin], -1)
        inv = gram_features(VectorDense(INVARIANT_CHANNELS, name="gram_mix")(zin, target), target)
        f = nn.gelu(nn.Dense(cfg.width, name="hidden")(jnp.concatenate([h, inv], -1)))
        out = len(DYNAMIC_VECTORS) + 1
        vec = GatedVectorMix(cfg.vector_channels, out, out_init=nn.initializers.zeros, name="vectors")(zin, target, f)
        vec = jnp.where(mask[..., None, None], vec, 0.0)
        scalars = nn.Dense(len(DYNAMIC_SCALARS), kernel_init=nn.initializers.zeros, name="scalars")(f)
        displacement = limb_mean(vec[..., -1], mask, 1)  # [..., 3]
        score = nn.Dense(1, name="score")(limb_mean(f, mask, 1))[..., 0]
        return jnp.swapaxes(vec[..., :-1], -1, -2), scalars, displacement, score


class FERNNCore(nn.Module):
    config: WorldModelConfig

    def setup(self):
        self.cell = EquivariantCell(self.config)
        self.readout = Readout(self.config)

    def __call__(self, h, z, vin, sin, target, mask, parent):
        h, z = self.cell(h, z, vin, sin, target, mask, parent)
        return self.readout(h, z, vin, target, mask)

    def update(self, h, z, vin, sin, target, mask, parent):
        return self.cell(h, z, vin, sin, target, mask, parent)

    def predict(self, h, z, vin, target, mask):
        return self.readout(h, z, vin, target, mask)


def _inputs(frame: Frame, action: jax.Array, displacement: jax.Array, stats: FeatureStats):
    """Per-copy inputs: vectors [N, B, L, 3, 10], scalars [N, B, L, 20], target [N, B, L, 3].

    displacement [N, B, 3] (metres) differs per copy; everything else is shared.
    """
    obs = frame.obs
    v = scaled_vectors(obs, stats)  # [B, L, 3, 8]
    torque = torque_vector(obs, action)[..., None]  # [B, L, 3, 1]
    n = displacement.shape[0]
    shared = jnp.broadcast_to(jnp.concatenate([v, torque], -1), (n,) + v.shape[:-1] + (9,))
    disp = displacement / stats.displacement_rms  # [N, B, 3]
    disp = jnp.broadcast_to(disp[:, :, None, :, None], shared.shape[:-1] + (1,))
    disp = jnp.where(obs.limb_mask[..., None, None], disp, 0.0)
    vin = jnp.concatenate([shared, disp], -1)
    sin = jnp.concatenate([scaled_scalars(obs, stats), masked_action(obs, action)], -1)
    target = jnp.where(obs.limb_mask[..., None], obs.vectors[..., TARGET_CHANNEL, :], 0.0)
    copies = lambda x: jnp.broadcast_to(x, (n,) + x.shape)  # noqa: E731
    return vin, copies(sin), copies(target)


def make_lifted(config: WorldModelConfig, stats: FeatureStats, copies: int) -> WorldModel:
    """The FERNN world model with V = the cyclic group of `copies` yaw rates."""
    core = FERNNCore(config)
    flows = yaw_rate_group(copies)
    rot = flow_element(flows, jnp.ones(())).rotation  # exp(nu) per copy: [N, 3, 3] (no velocity part)

    def transport_points(p, center):  # p [N, B, 3], center [B, 3] -> exp(nu) about the center
        return act_on_vectors(rot[:, None], p - center) + center

    def initial_carry(frame: Frame):
        b, l = frame.obs.limb_mask.shape
        h = jnp.zeros((copies, b, l, config.width))
        z = jnp.zeros((copies, b, l, 3, config.vector_channels))
        center = horizontal(frame.torso_position)
        # exp(-nu) p_0: transported once, it gives a zero first displacement
        inverse = jnp.swapaxes(rot, -1, -2)
        start = act_on_vectors(inverse[:, None], frame.torso_position - center) + center
        return {"h": h, "z": z, "previous": start, "center": center, "frame": frame}

    def advance(params, carry, action):
        """Consume carry["frame"] with `action`: new hidden state and every copy's prediction."""
        frame = carry["frame"]
        z = jnp.einsum("nij,nbljc->nblic", rot, carry["z"])  # transport copy nu by exp(nu)
        center = carry["center"]
        previous = transport_points(carry["previous"], center)
        displacement = frame.torso_position[None] - previous
        vin, sin, target = _inputs(frame, action, displacement, stats)
        mask, parent = frame.obs.limb_mask, frame.obs.parent
        h, z = core.apply(params, carry["h"], z, vin, sin, target, mask, parent, method=FERNNCore.update)
        dv, ds, disp, score = core.apply(params, h, z, vin, target, mask, method=FERNNCore.predict)
        # each copy predicts the next frame in its own frame (current + delta);
        # exp(nu) carries that to the next step
        dyn_v = jnp.asarray(DYNAMIC_VECTORS)
        vectors = frame.obs.vectors[..., dyn_v, :] + dv * stats.vector_rms[dyn_v][:, None]
        vectors = jnp.einsum("nij,nblcj->nblci", rot, vectors)
        dyn_s = jnp.asarray(DYNAMIC_SCALARS)
        scalars = frame.obs.scalars[..., dyn_s] + ds * stats.scalar_std[dyn_s]
        position = transport_points(frame.torso_position[None] + disp * stats.displacement_rms, center)
        weights = jax.nn.softmax(score, axis=0)  # [N, B]
        vectors = jnp.einsum("nb,nblcx->blcx", weights, vectors)
        scalars = jnp.einsum("nb,nblc->blc", weights, scalars)
        position = jnp.einsum("nb,nbx->bx", weights, position)
        predicted = with_dynamic(frame, vectors, scalars, position)
        new_carry = {"h": h, "z": z, "previous": jnp.broadcast_to(frame.torso_position, previous.shape),
                     "center": center, "frame": predicted}
        return predicted, new_carry

    def observe(params, context: Sequence):
        carry = initial_carry(context.frame(0))

        def body(carry, t):
            frame = jax.tree.map(lambda x: jnp.take(x, t, axis=1), Frame(context.obs, context.torso_position))
            carry = dict(carry, frame=frame)
            _, carry = advance(params, carry, jnp.take(context.actions, t, axis=1))
            return carry, None

        carry, _ = jax.lax.scan(body, carry, jnp.arange(context.length - 1))
        return dict(carry, frame=context.frame(context.length - 1))

    def step(params, carry, action):
        return advance(params, carry, action)

    def init(key, batch: Sequence):
        frame = batch.frame(0)
        carry = initial_carry(frame)
        vin, sin, target = _inputs(frame, batch.actions[:, 0], jnp.zeros((copies,) + frame.torso_position.shape),
                                   stats)
        return core.init(key, carry["h"], carry["z"], vin, sin, target, frame.obs.limb_mask, frame.obs.parent)

    model = WorldModel(init=init, loss=None, observe=observe, step=step)

    def loss(params, batch: Sequence, key):
        del key
        return rollout_loss(model, params, batch, config.context, stats)

    return model._replace(loss=loss)


def make_fernn(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    return make_lifted(config, stats, config.fernn.yaw_rate_group)


def make_static_equivariant(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    """The same recurrent model with V = {0}: equivariant to static elements only."""
    return make_lifted(config, stats, 1)
