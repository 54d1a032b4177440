"""Observer flows: the group elements of an observer that turns and moves over time.

A flow nu = (yaw rate w [rad/step], horizontal velocity u [m/step]) is a
generator of the group of rotations about z and horizontal translations
(SE(2) acting on xy). At frame t (t = 0 at the first frame of a sequence) it
gives the element exp(t nu) (`flow_element`): rotation R(w t) and
translation t J(w t) u, with J the SE(2) left Jacobian -- the exact
one-parameter subgroup, so exp((t + 1) nu) = exp(nu) exp(t nu). For a pure
rate or a pure velocity it equals equirl.geometry.isometry_along(w A, u, t).
The rotation is about the vertical line through a center c (horizontal):
g_t = T_c exp(t nu) T_-c. `apply_flow` takes c to be the torso's horizontal
position at the sequence's first frame (the observer stands where the robot
starts the window), so flows commute with static translations and a model
can be exact for both; pass `center` explicitly when flowing part of a
window (e.g. the predicted frames after a context) so every part uses the
same one. `apply_flow` transforms frame t by g_t with the static action
above: the same trajectory as seen by an observer whose own frame moves by
g_t^-1 (turning at -w, moving at -u).

Velocity channels under a flow: they are the inertial (world-frame)
velocities, re-expressed in the observer's axes at that instant; they
rotate with R(w t) like every other vector and get no frame-motion terms
(no w x r, no -u). So a flow acts frame by frame through the static group
action, and the map from past frames and actions to the next frame commutes
with it: if F predicts frame T from frames 0..T-1 of x, then the flowed
predictor exp(T nu) F(exp(-t nu) x'_t) is what a model should produce for the
flowed sequence x' = apply_flow(nu, x). A flow is visible in the data (the
target direction turns at w, displacements of the torso disagree with its
velocity channel), so it is learnable -- and a flow-equivariant model gets it
right for every flow in its lifted set without having seen it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from equirl.geometry import Isometry, act_on_vectors, yaw_matrix
from equirl.worldmodels.interface import Frame, Sequence, act_on_frame


@struct.dataclass
class ObserverFlow:
    """nu = (yaw_rate [...] rad/step, velocity [..., 3] m/step with zero z)."""

    yaw_rate: jax.Array
    velocity: jax.Array

    @staticmethod
    def make(yaw_rate: float = 0.0, velocity: tuple[float, float] = (0.0, 0.0)) -> "ObserverFlow":
        return ObserverFlow(
            jnp.asarray(yaw_rate, jnp.float32), jnp.asarray([velocity[0], velocity[1], 0.0], jnp.float32)
        )


def _sinc(x: jax.Array) -> jax.Array:
    """sin(x) / x, 1 at 0 (jnp.sinc is normalised by pi)."""
    return jnp.sinc(x / jnp.pi)


def flow_element(flow: ObserverFlow, t: jax.Array, center: jax.Array | None = None) -> Isometry:
    """exp(t nu) (rotation R(w t), translation t J(w t) u; exact, see the module doc),
    conjugated to turn about the vertical line through `center` [..., 3] if given.

    Leading axes of flow, t and center broadcast together (flow [B] with t [T]:
    use `flow_elements`).
    """
    t = jnp.asarray(t, jnp.float32)
    theta = flow.yaw_rate * t
    a = t * _sinc(theta)  # t sin(theta) / theta
    b = t * 0.5 * theta * jnp.square(_sinc(0.5 * theta))  # t (1 - cos theta) / theta
    ux, uy = flow.velocity[..., 0], flow.velocity[..., 1]
    shift = jnp.stack([a * ux - b * uy, b * ux + a * uy, jnp.zeros_like(a * ux)], -1)
    rot = yaw_matrix(theta)
    if center is not None:
        c = horizontal(center)
        shift = shift + c - act_on_vectors(rot, c)
    return Isometry(rot, shift)


def horizontal(p: jax.Array) -> jax.Array:
    """p [..., 3] with its z set to zero."""
    return p * jnp.array([1.0, 1.0, 0.0], p.dtype)


def flow_elements(flow: ObserverFlow, length: int, start: int = 0, center: jax.Array | None = None) -> Isometry:
    """g_t for t = start..start+length-1: leaves [..., length, ...] for flow [...]
    and center [..., 3] (or None: about the world's vertical axis)."""
    t = jnp.arange(start, start + length, dtype=jnp.float32)
    per_time = ObserverFlow(flow.yaw_rate[..., None], flow.velocity[..., None, :])
    return flow_element(per_time, t, None if center is None else center[..., None, :])


def apply_flow(flow: ObserverFlow, seq: Sequence, start: int = 0, center: jax.Array | None = None) -> Sequence:
    """Frame t of seq (t counted from `start`) transformed by g_t; flow is
    unbatched (one for all) or [B] (one per sequence); center [B, 3] defaults
    to the torso's position at seq's first frame (its z is ignored)."""
    if center is None:
        center = seq.torso_position[:, 0]
    if flow.yaw_rate.ndim == 0:
        flow = ObserverFlow(
            jnp.broadcast_to(flow.yaw_rate, center.shape[:1]), jnp.broadcast_to(flow.velocity, center.shape)
        )
    g = flow_elements(flow, seq.length, start, center)  # [B, T, ...]
    moved = act_on_frame(g, Frame(seq.obs, seq.torso_position))
    return seq.replace(obs=moved.obs, torso_position=moved.torso_position)


def apply_flow_to_frames(flow: ObserverFlow, frames: Frame, start: int, center: jax.Array) -> Frame:
    """Frames with leaves [B, K, ...] (e.g. predictions) transformed by g_t, t = start..start+K-1."""
    if flow.yaw_rate.ndim == 0:
        flow = ObserverFlow(
            jnp.broadcast_to(flow.yaw_rate, center.shape[:1]), jnp.broadcast_to(flow.velocity, center.shape)
        )
    return act_on_frame(flow_elements(flow, frames.torso_position.shape[1], start, center), frames)
