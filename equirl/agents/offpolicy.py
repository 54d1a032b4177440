"""The off-policy skeleton: collect, replay, k updates -- written once for SAC, TD3, CrossQ.

An algorithm is an `UpdateRule`: how to initialise its learner (parameters,
optimiser states, temperature, counters), one gradient step on a replay
batch, and its behaviour policy. Everything else is here:

- COLLECT: `steps_per_iteration` steps of every environment (`equirl.envs.rollout.unroll`)
  (uniform random torques on the driven dimensions until `learning_starts`
  environment steps were taken, then the rule's behaviour policy);
- STORE: the transitions, raw, in a device-resident ring buffer
  (`equirl.agents.replay`); the normaliser takes in each collected batch;
- LEARN: once the buffer holds enough, `updates_per_iteration` gradient
  steps, each on a batch of n-step transitions (`replay.sample_n_step`)
  whose observations are normalised with the statistics of the moment;
  with `mirror_probability` > 0 some of them are first replaced by their
  mirror images (`mirror_sample`).

Pitfalls handled where they bite:
- the stored next observation is info["final_obs"], the one the step ended
  in: an autoreset never leaks the fresh episode's first observation into a
  target;
- a terminated step does not bootstrap (discount 0), a truncated one does
  (the time limit is not a failure of the body);
- n-step sums stop at the end of an episode and at the newest stored step.

Divergence is measured, not guessed: every finished episode reports the mean
discounted Monte-Carlo return of its states (`q/mc_return`, same reward
scale and gamma as the critic), next to the critic's mean Q on replay
batches (`q/mean`); the driver stops a run whose gap (the Q bias) stays
above `run.max_q_bias`, or whose losses stop being finite.

Data parallel as SAC was: environments, buffer rows and batches split over
the device mesh (`equirl.agents.distributed`), parameters replicated.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from equirl.agents import distributed, normalization, replay
from equirl.agents.config import OffPolicyConfig
from equirl.agents.policy import (
    Agent,
    body_one_hot,
    episode_metrics,
    flatten_time,
    initial_normalizer,
    make_act,
    maybe_normalize,
)
from equirl.envs import symmetry
from equirl.envs.base import Env
from equirl.envs.rollout import Ends, episode_ends, unroll
from equirl.errors import ConfigError
from equirl.observation import Observation


class Transition(NamedTuple):
    """What the replay buffer stores: one item per environment step."""

    obs: Observation
    action: jax.Array
    reward: jax.Array  # raw (reward_scale is applied when a batch is drawn)
    next_obs: Observation  # the observation the step ended in, before any autoreset
    terminated: jax.Array  # bool: the body failed; do not bootstrap
    done: jax.Array  # bool: the episode ended here (terminated or truncated); n-step sums stop


class Batch(NamedTuple):
    """An n-step training batch: Q(obs, action) <- reward + discount * V(next_obs)."""

    obs: Observation
    action: jax.Array
    reward: jax.Array  # sum_k gamma^k r_k over the m <= n steps taken, times reward_scale
    next_obs: Observation
    discount: jax.Array  # gamma^m, or 0 where the last step terminated


class UpdateRule(NamedTuple):
    """What an off-policy algorithm supplies.

    init(key, obs, action) -> learner: a pytree with `.params.actor`.
    update(learner, batch, key) -> (learner, stats): one gradient step; stats
      holds scalars named in `stat_names`, "q/mean" among them.
    explore(learner, obs, key) -> action [..., L, 3]: the behaviour policy on
      normalised observations.
    """

    init: Callable[[jax.Array, Observation, jax.Array], Any]
    update: Callable[[Any, Batch, jax.Array], tuple[Any, dict]]
    explore: Callable[[Any, Observation, jax.Array], jax.Array]
    stat_names: tuple[str, ...]


@struct.dataclass
class PerEnv:
    """Running sums of each environment's current episode, for the Q-bias measurement."""

    mc_sum: jax.Array  # [B] sum over the episode's states of their discounted return-to-go


@struct.dataclass
class OffPolicyState:
    learner: Any
    normalizer: normalization.NormalizerState
    buffer: replay.ReplayBuffer
    env_state: Any
    per_env: PerEnv
    key: jax.Array
    env_steps: jax.Array  # environment steps taken so far (all envs)
    iteration: jax.Array

    @property
    def params(self):
        return self.learner.params


def random_actions(key: jax.Array, action_mask: jax.Array) -> jax.Array:
    """Uniform torques in [-1, 1] on the driven dimensions, zero elsewhere."""
    return jnp.where(action_mask, jax.random.uniform(key, action_mask.shape, minval=-1.0, maxval=1.0), 0.0)


def to_batch(sample: replay.NStep, config: OffPolicyConfig) -> Batch:
    keep = 1.0 - sample.terminated.astype(jnp.float32)
    return Batch(
        obs=sample.obs,
        action=sample.action,
        reward=config.reward_scale * sample.reward,
        next_obs=sample.next_obs,
        discount=keep * config.gamma ** sample.steps.astype(jnp.float32),
    )


def mirror_sample(
    sample: replay.NStep, tables: symmetry.MirrorTables, stride: int, probability: float, key: jax.Array
) -> replay.NStep:
    """Each transition, with `probability` (and only on a mirror-symmetric body), replaced by
    its image under a random vertical mirror: observations, next observations and the action
    reflected and relabelled; rewards, discounts and ends are invariant. The environment of
    a transition is its first row modulo `stride` (rows are written time-major)."""
    k_pick, k_plane = jax.random.split(key)
    rows = jax.tree.map(lambda t: t[sample.row % stride], tables)
    pick = rows.mirrorable & (jax.random.uniform(k_pick, rows.mirrorable.shape) < probability)
    normal = jax.random.uniform(k_plane, pick.shape, minval=-jnp.pi, maxval=jnp.pi)

    def choose(new, old):
        return jnp.where(pick.reshape(pick.shape + (1,) * (new.ndim - 1)), new, old)

    mirrored = sample._replace(
        obs=symmetry.mirror_observation(sample.obs, rows, normal),
        next_obs=symmetry.mirror_observation(sample.next_obs, rows, normal),
        action=symmetry.mirror_action(sample.action, rows),
    )
    return jax.tree.map(choose, mirrored, sample)


def observation_normalizer(config: OffPolicyConfig):
    """norm(state, obs): the observation as the networks read it (standardised with the
    config's std floor, or unchanged when the run does not normalise)."""
    return functools.partial(maybe_normalize, config.normalize_observations, std_floor=config.observation_std_floor)


def make_learn(rule: UpdateRule, config: OffPolicyConfig, row_stride: int, mesh=None, mirror=None):
    """learn(learner, buffer, normalizer, key) -> (learner, mean stats): `updates_per_iteration`
    gradient steps on n-step batches. row_stride: buffer rows between two consecutive steps
    of one environment (the number of environments). mirror: the environments'
    `symmetry.MirrorTables`, needed when config.mirror_probability > 0."""
    norm = observation_normalizer(config)
    place = (lambda x: distributed.constrain(x, mesh)) if mesh is not None else (lambda x: x)
    mirroring = config.mirror_probability > 0
    if mirroring and mirror is None:
        raise ConfigError("offpolicy.mirror_probability > 0 needs the environments' mirror tables")

    def learn(learner, buffer: replay.ReplayBuffer, normalizer, key: jax.Array):
        def one(learner, k):
            # A third key only when mirroring: runs without it draw the batches they always drew.
            k_sample, k_update, *k_mirror = jax.random.split(k, 3 if mirroring else 2)
            sample = replay.sample_n_step(buffer, k_sample, config.batch_size, config.n_step, config.gamma, row_stride)
            if mirroring:
                sample = mirror_sample(sample, mirror, row_stride, config.mirror_probability, k_mirror[0])
            mb = place(to_batch(sample, config))
            mb = mb._replace(obs=norm(normalizer, mb.obs), next_obs=norm(normalizer, mb.next_obs))
            return rule.update(learner, mb, k_update)

        learner, stats = jax.lax.scan(one, learner, jax.random.split(key, config.updates_per_iteration))
        return learner, {k: v.mean() for k, v in stats.items()}

    return learn


def discounted_weight(step_index: jax.Array, gamma: float) -> jax.Array:
    """How much reward k contributes to the sum of return-to-go over states 0..k:
    sum_{t<=k} gamma^(k-t) = (1 - gamma^(k+1)) / (1 - gamma)."""
    k1 = step_index.astype(jnp.float32) + 1.0
    return k1 if gamma == 1.0 else (1.0 - gamma**k1) / (1.0 - gamma)


def mc_returns(per_env: PerEnv, reward: jax.Array, ends: Ends, config: OffPolicyConfig) -> tuple[PerEnv, jax.Array]:
    """(running sums after the [T, B] steps, [T, B] mean discounted return-to-go of the
    episode's states, complete where the episode ended): the Q-bias reference."""

    def one(mc_sum, xs):
        r, length, done = xs
        mc_sum = mc_sum + config.reward_scale * r * discounted_weight(length - 1, config.gamma)
        mc_mean = mc_sum / jnp.maximum(length, 1).astype(jnp.float32)
        return jnp.where(done, 0.0, mc_sum), mc_mean

    mc_sum, mc_mean = jax.lax.scan(one, per_env.mc_sum, (reward, ends.episode_length, ends.done))
    return PerEnv(mc_sum=mc_sum), mc_mean


def make_offpolicy(env: Env, networks, config: OffPolicyConfig, rule: UpdateRule, start=None) -> Agent:
    """An `Agent` running `rule` in the shared collect/replay/update loop on `env`.
    start: an `ActingState` (`equirl.agents.start`) whose actor and normaliser the learner
    starts from, instead of fresh ones."""
    if not getattr(networks.actor.config, "squash", False):
        raise ConfigError("off-policy learners need a tanh-squashed actor: build the networks with network.squash=true")
    batch = config.steps_per_iteration * env.num_envs
    if batch > config.buffer_size:
        raise ConfigError(
            f"buffer_size={config.buffer_size}: smaller than one iteration's transitions "
            f"(steps_per_iteration * num_envs = {batch})"
        )
    mesh = env.mesh if env.mesh is not None else distributed.single_device_mesh()
    distributed.check_divisible("env.num_envs", env.num_envs, mesh.size)
    distributed.check_divisible("offpolicy.batch_size", config.batch_size, mesh.size)
    distributed.check_divisible("offpolicy.buffer_size", config.buffer_size, mesh.size)
    # Whole rows of environments only: n-step successors and a row's environment are read
    # `num_envs` rows apart, which must still hold across the ring's wrap.
    capacity = config.buffer_size - config.buffer_size % env.num_envs
    one_hot = body_one_hot(env.body_of_env, len(env.morphologies))
    mirror = None
    if config.mirror_probability > 0:
        mirror = symmetry.mirror_tables(env.morphologies, env.body_of_env, env.num_limbs)
        if not bool(mirror.mirrorable.any()):
            names = ", ".join(sorted({m.name for m in env.morphologies}))
            raise ConfigError(
                f"offpolicy.mirror_probability={config.mirror_probability}: no body here is mirror-symmetric "
                f"({names}), so there is nothing to mirror; set offpolicy.mirror_probability=0 "
                "(the crossq presets mirror half the replay)"
            )
    learn = make_learn(rule, config, env.num_envs, mesh, mirror)
    ready_at = max(config.learning_starts, config.batch_size)
    norm = observation_normalizer(config)

    def init(key: jax.Array) -> OffPolicyState:
        k_env, k_learner, key = jax.random.split(key, 3)
        env_state = env.reset(k_env)
        obs = env_state.obs
        action = jnp.zeros(obs.action_mask.shape, jnp.float32)
        first = lambda x: x[0]  # noqa: E731
        example = Transition(
            obs=jax.tree.map(first, obs),
            action=action[0],
            reward=env_state.reward[0],
            next_obs=jax.tree.map(first, obs),
            terminated=env_state.terminated[0],
            done=env_state.terminated[0],
        )
        learner, normalizer = rule.init(k_learner, obs, action), initial_normalizer()
        if start is not None:  # the optimiser's state depends on shapes only: it stays valid
            learner = learner._replace(params=learner.params._replace(actor=start.params.actor))
            normalizer = start.normalizer
        state = OffPolicyState(
            learner=learner,
            normalizer=normalizer,
            buffer=replay.init(example, capacity),
            env_state=env_state,
            per_env=PerEnv(mc_sum=jnp.zeros(env.num_envs, jnp.float32)),
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
        )
        return distributed.constrain_state(state, mesh)

    def collect(state: OffPolicyState):
        learner, normalizer = state.learner, state.normalizer

        # COLLECT: random torques while warming up, then the rule's behaviour policy.
        def policy(obs, key, t):
            k_random, k_policy = jax.random.split(key)
            warming_up = state.env_steps + t * env.num_envs < config.learning_starts
            explore = random_actions(k_random, obs.action_mask)
            return jnp.where(warming_up, explore, rule.explore(learner, norm(normalizer, obs), k_policy)), ()

        def record(step):
            after = step.after
            ends = episode_ends(after)
            tr = Transition(step.obs, step.action, after.reward, after.info["final_obs"], after.terminated, ends.done)
            return tr, ends

        constrain = lambda s: distributed.constrain(s, mesh)  # noqa: E731
        env_state, key, (transitions, ends) = unroll(
            env, state.env_state, policy, state.key, config.steps_per_iteration, record, constrain
        )
        per_env, mc_mean = mc_returns(state.per_env, transitions.reward, ends, config)
        # [T, B] leaves: split along the environments.
        split = lambda x: distributed.constrain(x, mesh, 1)  # noqa: E731
        return env_state, per_env, key, split(transitions), split(ends), split(mc_mean)

    def skip(learner, buffer, normalizer, key):
        # Same outputs as `learn`, nothing changed: the buffer is still warming up.
        return learner, {name: jnp.zeros((), jnp.float32) for name in rule.stat_names}

    def iteration(state: OffPolicyState) -> tuple[OffPolicyState, dict]:
        env_state, per_env, key, tr, ends, mc_mean = collect(state)

        # STORE (time-major, so one environment's consecutive steps are num_envs rows apart).
        flat = flatten_time(tr)
        buffer = replay.insert(state.buffer, flat)
        normalizer = state.normalizer
        if config.normalize_observations:
            normalizer = normalization.update_until(normalizer, flat.obs, state.env_steps, config.freeze_normalizer_at)

        # LEARN, once the buffer holds enough.
        key, k_learn = jax.random.split(key)
        learning = buffer.size >= ready_at
        learner, metrics = jax.lax.cond(learning, learn, skip, state.learner, buffer, normalizer, k_learn)
        metrics["reward/mean"] = tr.reward.mean()
        metrics["buffer/size"] = buffer.size.astype(jnp.float32)
        metrics["optim/learning"] = learning.astype(jnp.float32)
        # Averaged over a log window, their ratio is the window's mean MC return (see train.summarize).
        metrics["q/mc_sum"] = jnp.sum(jnp.where(ends.done, mc_mean, 0.0))
        metrics["q/mc_episodes"] = jnp.sum(ends.done).astype(jnp.float32)
        metrics.update(episode_metrics(one_hot, ends))
        new_state = OffPolicyState(
            learner=learner,
            normalizer=normalizer,
            buffer=buffer,
            env_state=env_state,
            per_env=per_env,
            key=key,
            env_steps=state.env_steps + batch,
            iteration=state.iteration + 1,
        )
        return distributed.constrain_state(new_state, mesh), distributed.replicate(metrics, mesh)

    # act reads state.params.actor and state.normalizer
    act = make_act(networks, config.normalize_observations, config.observation_std_floor)
    return Agent(init=init, iteration=iteration, act=act, steps_per_iteration=batch)
