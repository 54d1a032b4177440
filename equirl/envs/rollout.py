"""The one way anything acts in an environment: `unroll` and `run_episodes`.

In the spirit of brax's `generate_unroll`. A policy is a function
`policy(obs, key, t) -> (action, extras)`: the observation, a fresh key for
this step, and the step's index within the call (agents add their own
counters to it, e.g. the off-policy warm-up). `unroll` scans it through an
`Env` (`equirl.envs.base`) for a fixed number of steps and stacks, for every
step, what `record` keeps of a `Step`; `run_episodes` steps until each
environment's first episode has ended, folding every step into an
accumulator (evaluation: a fixed-length scan would run 1000 steps for
bodies that fall at 150).

PPO, the off-policy skeleton, distillation, evaluation, rendering, world-model
data collection and `equirl demo` all act through these two, so the key
split, the step and the episode bookkeeping are written once.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from equirl.observation import Observation

Policy = Callable[[Observation, jax.Array, jax.Array], tuple[jax.Array, Any]]


class StatePolicy(NamedTuple):
    """A policy that acts on the whole environment state, `fn(env_state, key, t)`: scripted
    controllers that read the physics (`equirl.envs.lqr`), and the learners that
    mix them in. Learned policies see only the observation."""

    fn: Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


class Step(NamedTuple):
    before: Any  # the environment state the policy acted in
    action: jax.Array  # what it sent (the environment cleans it: batched.sanitize_action)
    extras: Any  # what the policy returned beside the action (log-probs, values, labels ...)
    after: Any  # the environment state after the step: reward, terminated, truncated, info

    @property
    def obs(self) -> Observation:
        """What the policy saw."""
        return self.before.obs


class Ends(NamedTuple):
    """Per environment: did an episode end on this step, and its totals if so."""

    done: jax.Array  # bool: terminated or truncated
    episode_return: jax.Array
    episode_length: jax.Array
    end_reasons: jax.Array  # bit mask over task.END_REASONS (0: the time limit, or still going)


def episode_ends(after) -> Ends:
    info = after.info
    return Ends(after.terminated | after.truncated, info["episode_return"], info["episode_length"], info["end_reasons"])


def deterministic(act: Callable[[Observation], jax.Array]) -> Policy:
    """A policy from an action function of the observation alone (evaluation, rendering)."""
    return lambda obs, key, t: (act(obs), ())


def _act_and_step(env, policy: Policy, env_state, key, t) -> tuple[Step, jax.Array]:
    # The key is split the same way for every caller, so a run is reproducible from its seed.
    key, k_act = jax.random.split(key)
    if isinstance(policy, StatePolicy):
        action, extras = policy.fn(env_state, k_act, t)
    else:
        action, extras = policy(env_state.obs, k_act, t)
    return Step(env_state, action, extras, env.step(env_state, action)), key


def unroll(
    env,
    env_state,
    policy: Policy,
    key: jax.Array,
    length: int,
    record: Callable[[Step], Any] = lambda step: step,
    constrain: Callable[[Any], Any] | None = None,
):
    """(final env state, key, records): `length` steps with `lax.scan`; records are
    `record(step)` stacked along a leading time axis ([T, B, ...]). `constrain`
    is applied to the carried env state (sharding constraints in training)."""

    def body(carry, t):
        env_state, key = carry
        step, key = _act_and_step(env, policy, env_state, key, t)
        after = step.after if constrain is None else constrain(step.after)
        return (after, key), record(step)

    (env_state, key), records = jax.lax.scan(body, (env_state, key), jnp.arange(length, dtype=jnp.int32))
    return env_state, key, records


def run_episodes(env, env_state, policy: Policy, key: jax.Array, fold: Callable, accumulator: Any, limit: int):
    """accumulator after stepping until every environment's first episode has ended
    (or `limit` steps): `fold(accumulator, step, first_end)` is called on every
    step, `first_end` [B] marking the environments whose first episode ends there."""

    def cond(carry):
        t, _, _, finished, _ = carry
        return (t < limit) & ~jnp.all(finished)

    def body(carry):
        t, env_state, key, finished, acc = carry
        step, key = _act_and_step(env, policy, env_state, key, t)
        first_end = (step.after.terminated | step.after.truncated) & ~finished
        return t + 1, step.after, key, finished | first_end, fold(acc, step, first_end)

    finished = jnp.zeros(env.num_envs, jnp.bool_)
    carry = (jnp.int32(0), env_state, key, finished, accumulator)
    return jax.lax.while_loop(cond, body, carry)[-1]
