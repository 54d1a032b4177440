"""How far a function is from equivariant: finite-group and Lie-derivative errors.

For any f and any way the group acts on its inputs (`act_in(g, x)`) and
outputs (`act_out(g, y)`), with g an `equirl.geometry.Isometry` (an O_g(3)
element and a horizontal translation):

  finite_group_error    mean over n random g of |f(g.x) - g.f(x)| / |f(x)|
  errors_for_elements   the same ratio for given elements of any kind (flows)
  lie_derivative_error  |d/dt [f(g_t.x) - g_t.f(x)] at t=0| / |f(x)|, with
                        g_t moving along a generator (a rotation about z by
                        default, or a horizontal translation), by jax.jvp

Norms are Frobenius norms over the whole output pytree (all batch elements
together). Both are zero exactly when f is equivariant (to rounding); a
network that is not gives errors of order one. Everything here is jit-able
given static `fn`, `act_in`, `act_out` and `num_samples`.

Ready-made actions:
  act_on_observation    each observation vector channel by its parity
                        (equirl.observation): polar v -> R v, axial (angular
                        velocity, hinge axes) v -> det(R) R v; scalars,
                        masks and the tree unchanged. Translations act
                        trivially: the observation holds no absolute
                        horizontal position (positions are relative to the
                        torso, the height is a z coordinate). A physical
                        mirror also relabels mirrored limbs and hinges; that
                        part is the body's (equirl.envs.symmetry).
  invariant             y -> y (values, Q-values, torques, log-stds)
  act_on_limb_vectors   y[..., 3] -> R y (per-limb vectors, e.g. SET's u)
  act_on_positions      absolute positions p[..., 3] -> R p + t
  distribution_summary  turns an action distribution into [mode, stddev]
                        stacked on a last axis: both invariant, so use it with
                        `invariant`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from equirl.geometry import (
    ROTATION_GENERATOR_Z,
    TRANSLATION_GENERATOR_X,
    Isometry,
    act_on_points,
    act_on_vectors,
    random_isometry,
)
from equirl.observation import Observation

Action = Callable[[Isometry, Any], Any]

# --- group actions ------------------------------------------------------------


def act_on_observation(g: Isometry, obs: Observation) -> Observation:
    """Each vector channel by its parity (`Observation.transform`); translations act trivially.

    g is one element (no batch axes); it acts on every observation of the batch.
    """
    return obs.transform(g.rotation)


def invariant(g: Isometry, y: Any) -> Any:
    del g
    return y


def act_on_limb_vectors(g: Isometry, y: jax.Array) -> jax.Array:
    """Vectors on the last axis [..., 3] turn with R; translations do nothing."""
    return act_on_vectors(g.rotation, y)


def act_on_positions(g: Isometry, p: jax.Array) -> jax.Array:
    """Absolute positions [..., 3]: R p + t."""
    return act_on_points(g, p)


def distribution_summary(dist) -> jax.Array:
    """[..., L, 3, 2]: the distribution's mode and standard deviation, stacked.

    For the torque distributions of equirl.nn both are invariant.
    """
    return jnp.stack([dist.mode(), dist.stddev()], -1)


# --- errors ---------------------------------------------------------------------


def _traced(tree: Any) -> bool:
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(tree))


def _norm(tree: Any) -> jax.Array:
    """Frobenius norm of a whole pytree, in at least float32."""
    leaves = [leaf.astype(jnp.promote_types(leaf.dtype, jnp.float32)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in leaves))


def _difference(a: Any, b: Any) -> Any:
    return jax.tree_util.tree_map(jnp.subtract, a, b)


def _relative(num: jax.Array, den: jax.Array) -> jax.Array:
    return num / jnp.maximum(den, jnp.finfo(jnp.float32).tiny)


_sample_elements = jax.jit(random_isometry, static_argnums=(1, 2))


@jax.jit
def _relative_gap(a: Any, b: Any, y: Any) -> jax.Array:
    return _relative(_norm(_difference(a, b)), _norm(y))


def finite_group_errors(
    fn: Callable[[Any], Any],
    x: Any,
    key: jax.Array,
    num_samples: int = 8,
    act_in: Action = act_on_observation,
    act_out: Action = invariant,
    reflections: bool = True,
    translation_scale: float = 1.0,
) -> jax.Array:
    """[num_samples] relative errors |f(g.x) - g.f(x)| / |f(x)| for random g.

    g: a uniform yaw, a reflection through a vertical plane with probability
    1/2 (if `reflections`), and a N(0, translation_scale^2) horizontal shift.
    One g acts on the whole batch x at a time.
    """
    if _traced(x) or _traced(key):
        # Under jit: one copy of fn in the program, mapped over the elements.
        y = fn(x)
        scale = _norm(y)
        elements = random_isometry(key, (num_samples,), reflections=reflections, translation_scale=translation_scale)

        def error(g: Isometry) -> jax.Array:
            return _relative(_norm(_difference(fn(act_in(g, x)), act_out(g, y))), scale)

        return jax.lax.map(error, elements)

    # Called eagerly (tests, logs): fn is called as it is -- a jitted fn reuses
    # its compiled program -- and the bookkeeping runs in small jitted helpers.
    y = fn(x)
    elements = _sample_elements(key, (num_samples,), reflections, translation_scale)
    errors = []
    for i in range(num_samples):
        g = jax.tree_util.tree_map(lambda e: e[i], elements)
        errors.append(_relative_gap(fn(jax.jit(act_in)(g, x)), jax.jit(act_out)(g, y), y))
    return jnp.stack(errors)


def finite_group_error(
    fn: Callable[[Any], Any],
    x: Any,
    key: jax.Array,
    num_samples: int = 8,
    act_in: Action = act_on_observation,
    act_out: Action = invariant,
    reflections: bool = True,
    translation_scale: float = 1.0,
) -> jax.Array:
    """Mean over num_samples random group elements of |f(g.x) - g.f(x)| / |f(x)|."""
    errors = finite_group_errors(fn, x, key, num_samples, act_in, act_out, reflections, translation_scale)
    return jnp.mean(errors)


def errors_for_elements(
    fn: Callable[[Any], Any],
    x: Any,
    elements: list[Any],
    act_in: Action = act_on_observation,
    act_out: Action = invariant,
) -> jax.Array:
    """[len(elements)] relative errors |f(g.x) - g.f(x)| / |f(x)| for given elements.

    The elements may be anything act_in and act_out accept -- e.g. observer
    flows acting on whole sequences (equirl.worldmodels.metrics) -- so a
    transformation that is not a single Isometry is measured the same way.
    """
    y = fn(x)
    return jnp.stack([_relative_gap(fn(act_in(g, x)), act_out(g, y), y) for g in elements])


def lie_derivative_error(
    fn: Callable[[Any], Any],
    x: Any,
    act_in: Action = act_on_observation,
    act_out: Action = invariant,
    rotation_generator: jax.Array = ROTATION_GENERATOR_Z,
    translation_generator: jax.Array | None = None,
) -> jax.Array:
    """|L f(x)| / |f(x)| with L f(x) = d/dt [f(g_t.x) - g_t.f(x)] at t = 0.

    g_t moves along the rotation generator A (default: rotation about z) and
    translation generator b (default: none), with tangent (A, b) at t = 0. Use
    `translation_generator=TRANSLATION_GENERATOR_X` with
    `rotation_generator=0` for the translation Lie derivative. Computed in one
    jax.jvp; the tangent is exact, not a finite difference.
    """
    if translation_generator is None:
        translation_generator = jnp.zeros(3)
    rotation_generator = jnp.asarray(rotation_generator, jnp.float32)
    translation_generator = jnp.asarray(translation_generator, jnp.float32)
    y = fn(x)

    def gap(t: jax.Array) -> Any:
        # Only the tangent at t = 0 matters, and (I + tA, tb) has the same one
        # as the one-parameter subgroup (expm(tA), tb) -- without an expm to
        # trace and compile.
        g = Isometry(jnp.eye(3) + t * rotation_generator, t * translation_generator)
        return _difference(fn(act_in(g, x)), act_out(g, y))

    _, tangent = jax.jvp(gap, (jnp.zeros(()),), (jnp.ones(()),))
    return _relative(_norm(tangent), _norm(y))


def rotation_lie_error(fn, x, act_in: Action = act_on_observation, act_out: Action = invariant) -> jax.Array:
    """Lie-derivative error along the rotation about z."""
    return lie_derivative_error(fn, x, act_in, act_out, ROTATION_GENERATOR_Z, None)


def translation_lie_error(
    fn,
    x,
    act_in: Action = act_on_observation,
    act_out: Action = invariant,
    generator: jax.Array = TRANSLATION_GENERATOR_X,
) -> jax.Array:
    """Lie-derivative error along a horizontal translation (x by default)."""
    return lie_derivative_error(fn, x, act_in, act_out, jnp.zeros((3, 3)), generator)
