"""How good and how equivariant a world model is.

  kstep_errors        open-loop error k steps after the context, k in (1, 5, 10, 25, 50):
                      the z-scored squared error per dynamic feature (mean over
                      features, limbs, windows; `interface.normalized_error`) and the
                      torso position error in metres
  equivariance_report finite-group and Lie-derivative errors (equirl.equivariance) of the
                      model's open-loop predictions, for static elements (O_g(3) and
                      translations) and for observer flows (given flows, and the
                      Lie derivative along a flow's yaw rate at rate zero)

The function measured is (context, actions) -> predicted (vectors, scalars,
torso position) of k frames; a group element acts on the context as the
interface says, on actions not at all (they are invariant torques) and on
each predicted frame t as it would on the recorded frame t.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from equirl.equivariance import errors_for_elements, finite_group_error, lie_derivative_error
from equirl.geometry import ROTATION_GENERATOR_Z, TRANSLATION_GENERATOR_X, Isometry, compose_isometries
from equirl.worldmodels.common import frame_arrays, window_error
from equirl.worldmodels.flows import ObserverFlow, apply_flow, apply_flow_to_frames, horizontal
from equirl.worldmodels.interface import (
    FeatureStats,
    Frame,
    Sequence,
    WorldModel,
    act_on_frame,
    act_on_sequence,
    normalized_error,
    rollout,
)

K_STEPS = (1, 5, 10, 25, 50)


def test_error(model: WorldModel, params, batch: Sequence, context: int, stats: FeatureStats) -> dict:
    """Mean errors of open-loop rollouts over the rest of the window (for training logs)."""
    err = window_error(model, params, batch, context, stats)
    return {k: jnp.mean(v) for k, v in err.items()}


def kstep_errors(
    model: WorldModel,
    params,
    batch: Sequence,
    context: int,
    stats: FeatureStats,
    ks=K_STEPS,
    flow: ObserverFlow | None = None,
) -> dict[str, float]:
    """{"z_k": mean z-scored squared error at step k, "position_m_k": mean torso
    position error (m) at step k} for the windows of `batch` (optionally flowed),
    rolled out open loop for max(ks) steps after `context` frames."""
    horizon = max(ks)
    if batch.length < context + horizon:
        raise ValueError(f"windows of {batch.length} frames: need context {context} + {horizon}")
    if flow is not None:
        batch = apply_flow(flow, batch)
    pred, err = _rollout_errors(model, params, batch, context, horizon, stats)
    out = {}
    for k in ks:
        out[f"z_{k}"] = float(np.mean(np.asarray(err["total"][:, k - 1])))
        out[f"position_m_{k}"] = float(np.mean(np.asarray(err["position_m"][:, k - 1])))
    return out


def _rollout_errors(model, params, batch, context, horizon, stats):
    fn = _compiled_rollout(model, context, horizon)
    pred = fn(params, batch)
    target = Frame(
        jax.tree.map(lambda x: x[:, context : context + horizon], batch.obs),
        batch.torso_position[:, context : context + horizon],
    )
    err = normalized_error(pred, target, stats)
    err["position_m"] = jnp.linalg.norm(pred.torso_position - target.torso_position, axis=-1)
    return pred, err


_ROLLOUTS: dict = {}


def _compiled_rollout(model: WorldModel, context: int, horizon: int):
    key = (id(model.step), context, horizon)
    if key not in _ROLLOUTS:
        _ROLLOUTS[key] = (
            model,
            jax.jit(
                lambda p, b: rollout(model, p, b.frames(0, context), b.actions[:, context - 1 : context - 1 + horizon])
            ),
        )
    return _ROLLOUTS[key][1]


# --- equivariance ---------------------------------------------------------------------


def prediction_fn(model: WorldModel, params, horizon: int):
    """f((context, actions)) -> (vectors, scalars, torso_position) of `horizon` predicted frames."""

    @jax.jit
    def fn(x):
        context, actions = x
        return frame_arrays(rollout(model, params, context, actions[:, :horizon]))

    return fn


def _static_in(g: Isometry, x):
    context, actions = x
    return act_on_sequence(g, context), actions


def _static_out(g: Isometry, y):
    vectors, scalars, position = y
    moved = act_on_frame(g, Frame(_obs_like(vectors, scalars), position))
    return moved.obs.vectors, moved.obs.scalars, moved.torso_position


def _obs_like(vectors, scalars):
    from equirl.observation import Observation

    mask = jnp.ones(vectors.shape[:-2], bool)
    return Observation(vectors, scalars, mask, jnp.zeros(mask.shape, jnp.int32), jnp.ones(mask.shape + (3,), bool))


def flow_actions(context_length: int):
    """(act_in, act_out) of observer flows on (context, actions) and on predictions:
    frame t transformed by g_t about the context's first torso position."""

    def act_in(flow: ObserverFlow, x):
        context, actions = x
        return apply_flow(flow, context), actions

    def act_out_with(x):
        center = x[0].torso_position[:, 0]

        def act_out(flow: ObserverFlow, y):
            vectors, scalars, position = y
            moved = apply_flow_to_frames(flow, Frame(_obs_like(vectors, scalars), position), context_length, center)
            return moved.obs.vectors, moved.obs.scalars, moved.torso_position

        return act_out

    return act_in, act_out_with


def _power_frames(g: Isometry, center: jax.Array, frames: Frame, start: int) -> Frame:
    """Frame t (t = start, start+1, ...) transformed by (T_c g T_-c)^t: the discrete flow generated by g."""
    c = horizontal(center)  # [B, 3]
    about = Isometry(
        jnp.broadcast_to(g.rotation, c.shape[:1] + (3, 3)), g.translation + c - jnp.einsum("ij,bj->bi", g.rotation, c)
    )
    n = frames.torso_position.shape[1]
    identity = Isometry(jnp.broadcast_to(jnp.eye(3), about.rotation.shape), jnp.zeros_like(c))

    def power(p, _):
        return compose_isometries(about, p), p

    first, _ = jax.lax.scan(power, identity, None, length=start) if start else (identity, None)
    _, per_time = jax.lax.scan(power, first, None, length=n)  # leaves [n, B, ...]
    per_time = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), per_time)
    return act_on_frame(per_time, frames)


def equivariance_report(
    model: WorldModel,
    params,
    context: Sequence,
    actions: jax.Array,
    key: jax.Array,
    flows: dict[str, ObserverFlow] | None = None,
    num_samples: int = 4,
) -> dict[str, float]:
    """Relative equivariance errors of the open-loop predictions (see the module doc).

    static_finite: random O_g(3) elements with N(0, 1 m) horizontal shifts;
    static_lie_rotation / static_lie_translation: Lie derivatives along a
    rotation about z and a translation along x; flow_<name>: the finite error
    for each given flow; flow_lie_rotation / flow_lie_translation: the Lie
    derivative along a yaw-rate / velocity flow at zero.
    """
    horizon = actions.shape[1]
    c = context.length
    fn = prediction_fn(model, params, horizon)
    x = (context, actions)
    out = {
        "static_finite": float(finite_group_error(fn, x, key, num_samples, _static_in, _static_out)),
        "static_lie_rotation": float(lie_derivative_error(fn, x, _static_in, _static_out)),
        "static_lie_translation": float(
            lie_derivative_error(fn, x, _static_in, _static_out, jnp.zeros((3, 3)), TRANSLATION_GENERATOR_X)
        ),
    }
    if flows:
        act_in, act_out_with = flow_actions(c)
        errors = errors_for_elements(fn, x, list(flows.values()), act_in, act_out_with(x))
        out.update({f"flow_{name}": float(e) for name, e in zip(flows, errors)})

    center = context.torso_position[:, 0]

    def flow_in(g: Isometry, x):
        ctx, acts = x
        moved = _power_frames(g, center, Frame(ctx.obs, ctx.torso_position), 0)
        return ctx.replace(obs=moved.obs, torso_position=moved.torso_position), acts

    def flow_out(g: Isometry, y):
        vectors, scalars, position = y
        moved = _power_frames(g, center, Frame(_obs_like(vectors, scalars), position), c)
        return moved.obs.vectors, moved.obs.scalars, moved.torso_position

    out["flow_lie_rotation"] = float(lie_derivative_error(fn, x, flow_in, flow_out, ROTATION_GENERATOR_Z))
    out["flow_lie_translation"] = float(
        lie_derivative_error(fn, x, flow_in, flow_out, jnp.zeros((3, 3)), TRANSLATION_GENERATOR_X)
    )
    return out
