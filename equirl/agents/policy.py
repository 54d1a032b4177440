"""What PPO and SAC share: the normalised policy, episode bookkeeping, the agent interface."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from equirl.agents import normalization
from equirl.envs.rollout import Ends
from equirl.envs.task import reason_counts
from equirl.observation import NUM_SCALARS, NUM_VECTORS, Observation


class Agent(NamedTuple):
    """A training algorithm as pure functions.

    init(key) -> state: every array the run needs (parameters, optimiser,
      normaliser, environment, replay buffer, RNG, counters): checkpoint it
      and the run can go on from it.
    iteration(state) -> (state, metrics): one compiled step of collection and
      learning; metrics holds scalars and per-body episode sums (see
      `episode_metrics`).
    act(state, obs, key, deterministic) -> action [..., L, 3]: the current policy.
    steps_per_iteration: environment steps one iteration takes (all envs).
    """

    init: Callable[[jax.Array], Any]
    iteration: Callable[[Any], tuple[Any, dict]]
    act: Callable[..., jax.Array]
    steps_per_iteration: int


class ActorParams(NamedTuple):
    actor: Any


class ActingState(NamedTuple):
    """All that `make_act`'s act reads of an agent state: a teacher, a shipped controller or a
    student keeps only this (a training state may hold a replay buffer of hundreds of MB)."""

    params: ActorParams
    normalizer: normalization.NormalizerState


def acting_state(state) -> ActingState:
    """The acting part of any agent state (parameters with an `actor`, and a normaliser)."""
    return ActingState(ActorParams(state.params.actor), state.normalizer)


def initial_normalizer() -> normalization.NormalizerState:
    return normalization.init(NUM_VECTORS, NUM_SCALARS)


def maybe_normalize(
    enabled: bool, state: normalization.NormalizerState, obs: Observation, std_floor: float = 0.0
) -> Observation:
    return normalization.normalize(state, obs, std_floor=std_floor) if enabled else obs


def make_act(networks, normalize_observations: bool, std_floor: float = 0.0) -> Callable[..., jax.Array]:
    """act(state, obs, key=None, deterministic=True) -> torques [..., L, 3] for any
    agent state with `params.actor` and `normalizer` (PPO and SAC alike)."""

    def act(state, obs: Observation, key: jax.Array | None = None, deterministic: bool = True) -> jax.Array:
        obs = maybe_normalize(normalize_observations, state.normalizer, obs, std_floor)
        dist = networks.actor.apply(state.params.actor, obs)
        return dist.mode() if deterministic else dist.sample(seed=key)

    return act


def body_one_hot(body_of_env: np.ndarray, num_bodies: int) -> jax.Array:
    """[B, num_bodies] float: which body each environment simulates."""
    return jnp.asarray(np.eye(num_bodies, dtype=np.float32)[np.asarray(body_of_env)])


def episode_metrics(one_hot: jax.Array, ends: Ends) -> dict:
    """Per-body sums over the episodes that ended (`ends` holds [T, B] leaves,
    `equirl.envs.rollout.episode_ends`), and how many of them ended for each of
    task.END_REASONS, then by the time limit alone."""
    ended = ends.done
    by_time = jnp.sum(ended & (ends.end_reasons == 0)).astype(jnp.float32)
    done = ended.astype(jnp.float32)
    return {
        "episodes/count": jnp.einsum("tb,bk->k", done, one_hot),
        "episodes/return_sum": jnp.einsum("tb,bk->k", done * ends.episode_return, one_hot),
        "episodes/length_sum": jnp.einsum("tb,bk->k", done * ends.episode_length.astype(jnp.float32), one_hot),
        "episodes/end_reasons": jnp.append(reason_counts(ends.end_reasons, ended), by_time),
    }


def flatten_time(tree: Any) -> Any:
    """[T, B, ...] leaves -> [T * B, ...]."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)
