"""Distillation: trained teachers label the states a student visits (DAgger), one student learns
them all. A registered algorithm ("distill"), so `equirl train` runs it with every piece of run
machinery (checkpoints, resume, logs, the equivariance probe); `equirl distill` is the short way in.

One iteration:
  COLLECT  every environment steps `steps_per_iteration` times. The student acts with its
           deterministic action, except where a coin of weight beta picks the teacher's
           (beta falls from beta_start to 0 over beta_decay_steps environment steps: early
           states are the teacher's, later ones the student's own). The teacher of each
           environment's body labels every visited state with its deterministic action.
  STORE    (observation, label) pairs go to a ring buffer; the student's observation
           normaliser sees them.
  LEARN    `updates_per_iteration` Adam steps on the squared action error over driven
           dimensions, on batches drawn from the buffer.

Teachers are read from their newest checkpoints when the agent is built; they are inputs, not
state, so a checkpoint of a distillation run holds only the student, its optimiser, normaliser,
buffer, environments and counters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from equirl.agents import distributed, normalization, replay
from equirl.agents.policy import (
    ActorParams,
    Agent,
    acting_state,
    body_one_hot,
    episode_metrics,
    flatten_time,
    initial_normalizer,
    make_act,
    maybe_normalize,
)
from equirl.agents.registry import AlgorithmSpec
from equirl.envs import lqr
from equirl.envs.rollout import StatePolicy, episode_ends, unroll
from equirl.errors import ConfigError
from equirl.nn.config import FIXED_LIMB_KINDS
from equirl.observation import Observation


class Labelled(NamedTuple):
    obs: Observation
    label: jax.Array  # [L, 3] the teacher's action


@struct.dataclass
class DistillState:
    params: ActorParams
    opt_state: Any
    normalizer: normalization.NormalizerState
    buffer: replay.ReplayBuffer
    env_state: Any
    key: jax.Array
    env_steps: jax.Array
    iteration: jax.Array


class Teacher(NamedTuple):
    run_dir: str
    bodies: tuple[str, ...]  # body names it was trained on
    act: Any  # env state -> deterministic action [B, L, 3]


def lqr_teacher(env) -> Teacher:
    """The scripted balance controller, one gain per body of the student's environments."""
    gains = lqr.tables(env)

    def act(env_state) -> jax.Array:
        return lqr.act(gains, env.tables, env_state.qpos, env_state.qvel)

    return Teacher(lqr.NAME, tuple(m.name for m in env.morphologies), act)


def load_teacher(run_dir: str, task: str, max_limbs: int) -> Teacher:
    """A trained run as a labelling function; refuses one that cannot act on the student's observations."""
    from equirl.agents.saved_runs import load_run
    from equirl.envs.bodies import body_names

    config, state, agent = load_run(run_dir)
    if config.env.task != task:
        raise ConfigError(f"distill.teachers: {run_dir} was trained on task {config.env.task}, the student runs {task}")
    if config.network.kind in FIXED_LIMB_KINDS and config.env.max_limbs != max_limbs:
        raise ConfigError(
            f"distill.teachers: {run_dir} is a {config.network.kind} network for {config.env.max_limbs} limb slots; "
            f"set env.max_limbs={config.env.max_limbs} for the student"
        )
    bodies = body_names(config.env.bodies, config.env.max_limbs)
    small = acting_state(state)

    def act(env_state) -> jax.Array:
        return agent.act(small, env_state.obs, None, True)

    return Teacher(str(run_dir), bodies, act)


def teacher_of_envs(teachers: list[Teacher], env) -> np.ndarray:
    """[num_envs] int: the first teacher trained on each environment's body."""
    names = [m.name for m in env.morphologies]
    chosen = []
    for name in names:
        found = [i for i, t in enumerate(teachers) if name in t.bodies]
        if not found:
            raise ConfigError(
                f"distill.teachers: no teacher was trained on {name} "
                f"(they know {', '.join(sorted({b for t in teachers for b in t.bodies}))})"
            )
        chosen.append(found[0])
    return np.asarray(chosen)[np.asarray(env.body_of_env)]


def make_distill(config, env, networks) -> Agent:
    d = config.distill
    mesh = env.mesh
    task, max_limbs = config.env.task, config.env.max_limbs
    teachers = [lqr_teacher(env) if t == lqr.NAME else load_teacher(t, task, max_limbs) for t in d.teachers]
    which = jnp.asarray(teacher_of_envs(teachers, env))
    one_hot = body_one_hot(env.body_of_env, len(env.morphologies))
    optimizer = optax.chain(optax.clip_by_global_norm(d.max_grad_norm), optax.adam(d.learning_rate))
    norm = lambda s, o: maybe_normalize(d.normalize_observations, s, o)  # noqa: E731
    steps_per_iteration = env.num_envs * d.steps_per_iteration

    def labels(env_state) -> jax.Array:
        """Each environment's teacher's action (every teacher acts on the whole batch: they are small)."""
        actions = jnp.stack([t.act(env_state) for t in teachers])  # [T, B, L, 3]
        # Clipped as the environment clips: a Gaussian (PPO) teacher's mean may lie outside [-1, 1].
        return jnp.clip(jnp.take_along_axis(actions, which[None, :, None, None], axis=0)[0], -1.0, 1.0)

    def init(key: jax.Array) -> DistillState:
        k_env, k_actor, key = jax.random.split(key, 3)
        env_state = env.reset(k_env)
        obs = env_state.obs
        params = ActorParams(networks.actor.init(k_actor, obs))
        example = Labelled(jax.tree.map(lambda x: x[0], obs), jnp.zeros(obs.action_mask.shape[1:], jnp.float32))
        state = DistillState(
            params=params,
            opt_state=optimizer.init(params),
            normalizer=initial_normalizer(),
            buffer=replay.init(example, d.buffer_size),
            env_state=env_state,
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
        )
        return distributed.constrain_state(state, mesh)

    def student_action(params, normalizer, obs):
        return networks.actor.apply(params.actor, norm(normalizer, obs)).mode()

    def loss_fn(params, normalizer, batch: Labelled):
        mask = (batch.obs.action_mask & batch.obs.limb_mask[..., None]).astype(jnp.float32)
        error = jnp.square(student_action(params, normalizer, batch.obs) - batch.label) * mask
        return jnp.sum(error) / jnp.maximum(jnp.sum(mask), 1.0)

    def iteration(state: DistillState):
        params, normalizer = state.params, state.normalizer

        # COLLECT: the student's actions, the teacher's where beta's coin says so; every state labelled.
        def policy(env_state, key, t):
            label = labels(env_state)
            own = student_action(params, normalizer, env_state.obs)
            env_steps = state.env_steps + t * env.num_envs
            beta = d.beta_start * jnp.clip(1.0 - env_steps / d.beta_decay_steps, 0.0, 1.0)
            teacher_acts = jax.random.uniform(key, (env.num_envs,)) < beta
            return jnp.where(teacher_acts[:, None, None], label, own), (label, own, beta)

        def record(step):
            label, own, beta = step.extras
            mask = (step.obs.action_mask & step.obs.limb_mask[..., None]).astype(jnp.float32)
            gap = jnp.sum(jnp.abs(own - label) * mask) / jnp.maximum(jnp.sum(mask), 1.0)
            return Labelled(step.obs, label), episode_ends(step.after), gap, beta

        constrain = lambda s: distributed.constrain(s, mesh)  # noqa: E731
        env_state, key, (items, ends, gap, beta) = unroll(
            env, state.env_state, StatePolicy(policy), state.key, d.steps_per_iteration, record, constrain
        )
        flat = flatten_time(items)
        if d.normalize_observations:
            normalizer = normalization.update(normalizer, flat.obs)
        buffer = replay.insert(state.buffer, flat)

        # LEARN: regress the student on stored labels, once enough are stored.
        def update(carry, k):
            params, opt_state = carry
            batch = replay.sample(buffer, k, d.batch_size)
            loss, grads = jax.value_and_grad(loss_fn)(params, normalizer, batch)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        def learn(params, opt_state, key):
            keys = jax.random.split(key, d.updates_per_iteration)
            (params, opt_state), losses = jax.lax.scan(update, (params, opt_state), keys)
            return params, opt_state, jnp.mean(losses)

        key, k_learn = jax.random.split(key)
        ready = buffer.size >= jnp.maximum(d.learning_starts, d.batch_size)
        new_params, opt_state, loss = jax.lax.cond(
            ready,
            learn,
            lambda p, o, k: (p, o, jnp.zeros((), jnp.float32)),
            params,
            state.opt_state,
            k_learn,
        )
        metrics = {
            "distill/loss": loss,
            "distill/action_gap": jnp.mean(gap),
            "distill/beta": jnp.mean(beta),
            "optim/learning": ready.astype(jnp.float32),
            "buffer/size": buffer.size.astype(jnp.float32),
        }
        metrics.update(episode_metrics(one_hot, ends))
        new_state = DistillState(
            params=new_params,
            opt_state=opt_state,
            normalizer=normalizer,
            buffer=buffer,
            env_state=env_state,
            key=key,
            env_steps=state.env_steps + steps_per_iteration,
            iteration=state.iteration + 1,
        )
        return distributed.constrain_state(new_state, mesh), metrics

    return Agent(
        init=init,
        iteration=iteration,
        act=make_act(networks, d.normalize_observations),
        steps_per_iteration=steps_per_iteration,
    )


def _check(config) -> None:
    if config.algorithm == "distill" and not config.distill.teachers:
        raise ConfigError("distill.teachers: empty; name at least one trained run directory")


SPEC = AlgorithmSpec(
    name="distill",
    make=lambda config, env, networks, total_iterations: make_distill(config, env, networks),
    steps_per_env=lambda config: config.distill.steps_per_iteration,
    normalize_observations=lambda config: config.distill.normalize_observations,
    check=_check,
    state_shape_fields=("distill.buffer_size",),
)


def distill_config(
    teachers,
    *,
    bodies=None,
    student: str = "set",
    steps: int = 100_000,
    num_envs: int | None = None,
    name: str = "distill",
    out: str | None = None,
    sets=(),
):
    """The TrainConfig `equirl distill` runs: the teachers' task and limb slots, their bodies
    (or `bodies`), one environment per body, one update per collected transition, and a
    `student` network of the shipped preset sizes (`equirl.presets.NETWORKS`), tanh-squashed.
    With only the lqr teacher, `bodies` is required and the task is v1."""
    import dataclasses

    from equirl.agents.config import DistillConfig, RunConfig, TrainConfig
    from equirl.agents.saved_runs import run_config
    from equirl.config_io import apply_overrides
    from equirl.envs.bodies import body_names, largest_limb_count
    from equirl.envs.config import EnvConfig
    from equirl.presets import NETWORKS

    teachers = tuple(str(t) for t in teachers)
    if not teachers:
        raise ConfigError("distill: name at least one teacher run directory (or lqr)")
    if student not in NETWORKS:
        raise ConfigError(f"distill: student={student!r}: must be one of {tuple(NETWORKS)}")
    configs = [run_config(t) for t in teachers if t != lqr.NAME]
    if not configs and not bodies:
        raise ConfigError("distill: the lqr teacher was trained on nothing; name the student's bodies")
    tasks = {c.env.task for c in configs} or {"v1"}
    if len(tasks) > 1:
        raise ConfigError(f"distill.teachers: trained on different tasks ({', '.join(sorted(tasks))}); use one task")
    entries = tuple(bodies) if bodies else tuple(dict.fromkeys(e for c in configs for e in c.env.bodies))
    if configs:
        max_limbs = max(c.env.max_limbs for c in configs)
    else:  # the lqr teacher alone: as many limb slots as the largest body has
        max_limbs = largest_limb_count(entries)
    num_envs = num_envs or len(body_names(entries, max_limbs))
    config = TrainConfig(
        algorithm="distill",
        env=EnvConfig(bodies=entries, num_envs=num_envs, task=tasks.pop(), max_limbs=max_limbs),
        network=dataclasses.replace(NETWORKS[student], squash=True),
        distill=DistillConfig(teachers=teachers, updates_per_iteration=num_envs),
        run=RunConfig(name=name, total_steps=steps, out_dir=out or ""),
    )
    return apply_overrides(config, list(sets)) if sets else config
