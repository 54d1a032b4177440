"""Flow-equivariant recurrent world model (FERNN) over SET-style limb channels.

The recurrent cell is a static O_g(3)-equivariant update of per-limb hidden
state -- invariant scalars h [L, D] and 3D vectors Z [L, 3, C] -- in the
style of SET: vectors are only mixed linearly, scaled by invariant gates and
read through inner products (Gram matrices with the fixed down direction and
the target direction), so rotating every input vector rotates Z and leaves h
unchanged. Every channel it handles is polar: the axial inputs (angular
velocity, hinge axes, the torque) enter as their polar images and axial
outputs are rebuilt from predicted images (`common.polar_features`,
`common.dynamic_from_polar`), so a reflection acts as the physics does.
Limbs exchange messages through a mean over the body and the parent limb.

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
model (kind "static_equivariant").

Velocity flows need no lifting: an observer moving at constant velocity v
shifts the torso position by v t and leaves every observed vector alone, so
the model reads the torso position only through its second difference
a_t = d_t - d_{t-1} (d_t = p_t - exp(nu) p_{t-1}, the step's displacement),
which no velocity flow changes, and predicts p_{t+1} = exp(nu) (p_t + d_t + e)
with e an equivariant vector: in the copy nu = 0 the prediction moves by
v (t + 1), for every v at once (with a context of two frames or more; a_t is
zero until two displacements are known). So the static model (V = {0}) is
exactly equivariant to every velocity flow. A copy nu != 0 sees a velocity
flow as a drift turning at its rate (rotation and velocity flows do not
commute), so the lifted model is exact for velocity flows only as far as its
pooling weights rest on nu = 0 (measured in the report). exp(nu) turns about
the first context frame's torso position, as the flows of
interface.apply_flow do, so static translations cancel too.

Kind "fernn_estimated_rate" replaces the finite V by the one rate the data
shows: the observation carries a direction fixed in the world (the target
direction of the v1 task), so the turn of that direction between two frames
is the observer's yaw rate plus the (near-zero) turn of the target as seen
from the moving torso. One copy is transported by that measured rotation.
A flow of any rate w adds exactly w to the measurement, so the model is
flow-equivariant for every yaw rate, not only those of a finite V, and stays
O_g(3)-equivariant (a reflection turns the measured rotation the other way).
It assumes the reference direction is fixed, which the v1 task gives; v2
waypoints move it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.geometry import act_on_vectors, yaw_matrix
from equirl.nn.vector_ops import GatedVectorMix, VectorDense, VectorNorm, gram_features, polar_images
from equirl.observation import DYNAMIC_SCALARS, DYNAMIC_VECTORS, TARGET_CHANNEL
from equirl.worldmodels.common import (
    POLAR_OUTPUTS,
    dynamic_from_polar,
    masked_action,
    polar_features,
    rollout_loss,
    scaled_scalars,
    target_direction,
    torque_vector,
    with_dynamic,
)
from equirl.worldmodels.flows import ObserverFlow, flow_element, horizontal
from equirl.worldmodels.interface import FeatureStats, Frame, Sequence, WorldModel, WorldModelConfig

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
            s_ctx = jnp.concatenate(
                [s, jnp.broadcast_to(limb_mean(s, mask, 1)[..., None, :], s.shape), _parent_features(s, parent, 1)], -1
            )
            v_ctx = jnp.concatenate(
                [
                    vec,
                    jnp.broadcast_to(limb_mean(vec, mask, 2)[..., None, :, :], vec.shape),
                    _parent_features(vec, parent, 2),
                ],
                -1,
            )
            s = s + nn.gelu(nn.Dense(w, name=f"message_{i}")(s_ctx))
            vec = vec + GatedVectorMix(c, c, name=f"vector_message_{i}")(v_ctx, target, s)
        gates = nn.sigmoid(nn.Dense(w + c, name="gates")(s))
        u_h, u_z = gates[..., :w], gates[..., w:]
        h_new = (1.0 - u_h) * h + u_h * jnp.tanh(nn.Dense(w, name="candidate")(s))
        z_cand = VectorNorm(name="vector_candidate_norm")(
            GatedVectorMix(c, c, name="vector_candidate")(jnp.concatenate([vec, zin], -1), target, s)
        )
        z_new = (1.0 - u_z[..., None, :]) * z + u_z[..., None, :] * z_cand
        return jnp.where(mask[..., None], h_new, 0.0), jnp.where(mask[..., None, None], z_new, 0.0)


class Readout(nn.Module):
    """(h, Z, current vectors, target, mask) -> (vector deltas [..., L, 7, 3], scalar deltas
    [..., L, 7], change of the torso displacement [..., 3] in units of the displacement RMS, score [...])."""

    config: WorldModelConfig

    @nn.compact
    def __call__(self, h, z, vin, target, mask):
        cfg = self.config
        zin = jnp.concatenate([z, vin], -1)
        inv = gram_features(VectorDense(INVARIANT_CHANNELS, name="gram_mix")(zin, target), target)
        f = nn.gelu(nn.Dense(cfg.width, name="hidden")(jnp.concatenate([h, inv], -1)))
        out = POLAR_OUTPUTS + 1  # every channel polar (axial ones as two images), plus the displacement
        vec = GatedVectorMix(cfg.vector_channels, out, out_init=nn.initializers.zeros, name="vectors")(zin, target, f)
        vec = jnp.where(mask[..., None, None], vec, 0.0)
        scalars = nn.Dense(len(DYNAMIC_SCALARS), kernel_init=nn.initializers.zeros, name="scalars")(f)
        displacement = limb_mean(vec[..., -1], mask, 1)  # [..., 3]
        score = nn.Dense(1, name="score")(limb_mean(f, mask, 1))[..., 0]
        return dynamic_from_polar(vec[..., :-1], target), scalars, displacement, score


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
    """Per-copy inputs: vectors [N, B, L, 3, 15], scalars [N, B, L, 20], target [N, B, L, 3].

    Every vector input is polar (axial channels and the axial torque enter as their
    polar images), so the cell's polar-only operations respect the physics' parity.
    displacement [N, B, 3] (metres; the torso's second difference) differs per
    copy; everything else is shared.
    """
    obs = frame.obs
    target = target_direction(obs)
    v = polar_features(obs, stats)  # [B, L, 3, 12]
    torque = jnp.swapaxes(polar_images(torque_vector(obs, action)[..., None, :], target)[..., 0, :, :], -1, -2)
    n = displacement.shape[0]
    v = jnp.concatenate([v, torque], -1)  # [B, L, 3, 14]
    shared = jnp.broadcast_to(v, (n,) + v.shape)
    disp = displacement / stats.displacement_rms  # [N, B, 3]
    disp = jnp.broadcast_to(disp[:, :, None, :, None], shared.shape[:-1] + (1,))
    disp = jnp.where(obs.limb_mask[..., None, None], disp, 0.0)
    vin = jnp.concatenate([shared, disp], -1)
    sin = jnp.concatenate([scaled_scalars(obs, stats), masked_action(obs, action)], -1)
    copies = lambda x: jnp.broadcast_to(x, (n,) + x.shape)  # noqa: E731
    return vin, copies(sin), copies(target)


def measured_turn(previous: jax.Array, current: jax.Array) -> jax.Array:
    """The yaw rotation [..., 3, 3] taking the horizontal direction `previous` [..., 3] to `current`
    (the identity where either is zero)."""
    dot = previous[..., 0] * current[..., 0] + previous[..., 1] * current[..., 1]
    cross = previous[..., 0] * current[..., 1] - previous[..., 1] * current[..., 0]
    ok = dot * dot + cross * cross > 1e-12  # atan2(0, 0) has no gradient
    return yaw_matrix(jnp.arctan2(jnp.where(ok, cross, 0.0), jnp.where(ok, dot, 1.0)))


def make_lifted(config: WorldModelConfig, stats: FeatureStats, copies: int, estimate_rate: bool = False) -> WorldModel:
    """The FERNN world model with V = the cyclic group of `copies` yaw rates, or (estimate_rate)
    one copy turned at the rate measured from the reference direction."""
    core = FERNNCore(config)
    if estimate_rate:
        copies = 1
    fixed = flow_element(yaw_rate_group(copies), jnp.ones(())).rotation  # exp(nu) per copy: [N, 3, 3]

    def turns(carry, frame: Frame):
        """exp(nu) per copy and batch row: [N, B, 3, 3]."""
        b = frame.torso_position.shape[0]
        if not estimate_rate:
            return jnp.broadcast_to(fixed[:, None], (copies, b, 3, 3))
        current = frame.obs.vectors[:, 0, TARGET_CHANNEL]  # the torso's (limb 0) reference direction
        turn = measured_turn(carry["reference"], current)
        return jnp.where((carry["seen"] >= 1)[:, None, None], turn, jnp.eye(3))[None]

    def transport_points(rot, p, center):  # p [N, B, 3], center [B, 3] -> exp(nu) about the center
        return act_on_vectors(rot, p - center) + center

    # The carry is batch-first (copies second) so environments can reset rows of it;
    # the update runs copies-first.
    lifted = ("h", "z", "displacement")

    def batch_first(carry):
        return dict(carry, **{k: jnp.swapaxes(carry[k], 0, 1) for k in lifted})

    copies_first = batch_first  # the same swap, back

    def initial_carry(frame: Frame):
        b, l = frame.obs.limb_mask.shape
        h = jnp.zeros((copies, b, l, config.width))
        z = jnp.zeros((copies, b, l, 3, config.vector_channels))
        center = horizontal(frame.torso_position)
        zero = jnp.zeros((copies, b, 3))
        # "previous": the last torso position (unread until a frame is seen), the same for every copy
        return batch_first(
            {
                "h": h,
                "z": z,
                "previous": frame.torso_position,
                "displacement": zero,
                "seen": jnp.zeros((b,), jnp.int32),
                "center": center,
                "frame": frame,
                "reference": frame.obs.vectors[:, 0, TARGET_CHANNEL],
            }
        )

    def advance(params, carry, action):
        """Consume carry["frame"] with `action`: new hidden state and every copy's prediction."""
        carry = copies_first(carry)
        frame = carry["frame"]
        rot = turns(carry, frame)
        z = jnp.einsum("nbij,nbljc->nblic", rot, carry["z"])  # transport copy nu by exp(nu)
        center = carry["center"]
        previous = transport_points(rot, carry["previous"][None], center)
        # d_t is known from the second frame on, d_t - d_{t-1} from the third
        seen = carry["seen"][:, None]  # [B, 1], broadcast against [N, B, 3]
        displacement = jnp.where(seen >= 1, frame.torso_position[None] - previous, 0.0)
        last_displacement = act_on_vectors(rot, carry["displacement"])
        change = jnp.where(seen >= 2, displacement - last_displacement, 0.0)
        vin, sin, target = _inputs(frame, action, change, stats)
        mask, parent = frame.obs.limb_mask, frame.obs.parent
        h, z = core.apply(params, carry["h"], z, vin, sin, target, mask, parent, method=FERNNCore.update)
        dv, ds, disp, score = core.apply(params, h, z, vin, target, mask, method=FERNNCore.predict)
        # each copy predicts the next frame in its own frame (current + delta);
        # exp(nu) carries that to the next step
        dyn_v = jnp.asarray(DYNAMIC_VECTORS)
        vectors = frame.obs.vectors[..., dyn_v, :] + dv * stats.vector_rms[dyn_v][:, None]
        vectors = jnp.einsum("nbij,nblcj->nblci", rot, vectors)
        dyn_s = jnp.asarray(DYNAMIC_SCALARS)
        scalars = frame.obs.scalars[..., dyn_s] + ds * stats.scalar_std[dyn_s]
        position = transport_points(
            rot, frame.torso_position[None] + displacement + disp * stats.displacement_rms, center
        )
        weights = jax.nn.softmax(score, axis=0)  # [N, B]
        vectors = jnp.einsum("nb,nblcx->blcx", weights, vectors)
        scalars = jnp.einsum("nb,nblc->blc", weights, scalars)
        position = jnp.einsum("nb,nbx->bx", weights, position)
        predicted = with_dynamic(frame, vectors, scalars, position)
        new_carry = {
            "h": h,
            "z": z,
            "previous": frame.torso_position,
            "displacement": displacement,
            "seen": carry["seen"] + 1,
            "center": center,
            "frame": predicted,
            "reference": frame.obs.vectors[:, 0, TARGET_CHANNEL],
        }
        return predicted, batch_first(new_carry)

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
        carry = copies_first(initial_carry(frame))
        vin, sin, target = _inputs(frame, batch.actions[:, 0], jnp.zeros((copies,) + frame.torso_position.shape), stats)
        return core.init(key, carry["h"], carry["z"], vin, sin, target, frame.obs.limb_mask, frame.obs.parent)

    model = WorldModel(init=init, loss=None, observe=observe, step=step)

    def loss(params, batch: Sequence, key):
        del key
        return rollout_loss(model, params, batch, config.context, stats)

    return model._replace(loss=loss)


def make_fernn(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    return make_lifted(config, stats, config.fernn.yaw_rate_group)


def make_fernn_estimated_rate(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    return make_lifted(config, stats, 1, estimate_rate=True)


def make_static_equivariant(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    """The same recurrent model with V = {0}: equivariant to static elements only."""
    return make_lifted(config, stats, 1)
