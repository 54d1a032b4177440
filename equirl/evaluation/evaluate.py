"""Zero-shot evaluation: a trained policy, deterministic, on any bodies.

    from equirl.evaluation import evaluate, load_policy_for_eval, format_table

    results = evaluate("runs/hopper_ppo_set", ["zero_shot", "envs/hopper/hopper_3_shin.xml", "random:3:0"],
                       episodes=10, seeds=(0, 1))
    print(format_table(results))

Each body runs in its own `BatchedEnv` without autoreset: every environment
plays exactly one episode per batch, and the whole batch is one compiled
`equirl.envs.rollout.run_episodes`, which stops when every episode has ended.
A body that cannot be built or controlled (unreadable file, unsupported
joints, more limbs than an MLP policy takes) gets its reason in its row and
the other bodies are still evaluated.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from equirl.checks import check_int
from equirl.envs import rollout
from equirl.envs.task import END_REASONS, reason_counts
from equirl.errors import ConfigError, EquirlError
from equirl.evaluation.results import (  # noqa: F401  (re-exported: the public evaluation API)
    BodyResult,
    fell_by_text,
    format_table,
    output_stem,
    stderr_log,
    write_csv,
    write_json,
    write_outputs,
)
from equirl.nn.config import FIXED_LIMB_KINDS

# Episode end codes (the order of the columns of the table).
FELL, TIME_LIMIT, UNSTABLE = 0, 1, 2


@dataclasses.dataclass
class Policy:
    """A trained policy, independent of any environment.

    act(state, obs) -> action [B, L, 3] is pure (jit-able); `state` is the
    agent state it reads (parameters and observation normaliser).
    """

    config: Any  # TrainConfig
    state: Any
    act: Callable[[Any, Any], jax.Array]
    run_dir: Path | None = None
    step: int | None = None

    @property
    def max_limbs(self) -> int:
        """Limb slots of the observations the policy was trained on."""
        return self.config.env.max_limbs

    @property
    def fixed_limbs(self) -> bool:
        """True when the network takes exactly `max_limbs` limb slots (the MLP kinds)."""
        return self.config.network.kind in FIXED_LIMB_KINDS

    @property
    def name(self) -> str:
        return self.run_dir.name if self.run_dir is not None else self.config.run.name


def load_policy_for_eval(run_dir: str | os.PathLike, step: int | None = None) -> Policy:
    """The deterministic policy of a run's newest readable checkpoint (or of `step`).

    Raises ConfigError (a clear one-line message) when run_dir is not a run
    directory or holds no checkpoint.
    """
    from equirl.agents.saved_runs import load_run

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ConfigError(f"{run_dir}: no such run directory")
    config, state, agent = load_run(run_dir, step)

    def act(agent_state, obs):
        return agent.act(agent_state, obs, None, deterministic=True)

    steps = int(getattr(state, "env_steps", -1))
    return Policy(config=config, state=state, act=act, run_dir=run_dir, step=steps if steps >= 0 else step)


def as_policy(policy_or_run_dir, step: int | None = None) -> Policy:
    return policy_or_run_dir if isinstance(policy_or_run_dir, Policy) else load_policy_for_eval(policy_or_run_dir, step)


# --- environments -------------------------------------------------------------------------


def _units(entries: Sequence[str]) -> list[str]:
    """Suites expanded into body names; other entries (names, paths, random:...) as they are."""
    from equirl.morphology import sgrl

    units: list[str] = []
    for entry in entries:
        entry = str(entry)
        units.extend(sgrl.SUITES[entry] if entry in sgrl.SUITES else [entry])
    return units


def _error_text(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if isinstance(err, EquirlError) else f"{type(err).__name__}: {text}"


def plan_body(policy: Policy, unit: str) -> tuple[int, list[BodyResult]]:
    """(max_limbs to pad to, [rows]) for one unit; rows with `error` set cannot be evaluated.

    A set/transformer policy takes any limb count: a body with more limbs
    than it was trained with is padded to its own count (and says so).
    An MLP policy takes exactly its training limb count.
    """
    from equirl.envs.batched import UNBOUNDED_LIMBS
    from equirl.envs.bodies import resolve

    env_cfg = policy.config.env
    if unit.startswith("random:"):
        # Generated bodies depend on max_limbs: use the training value (they all fit).
        pairs = resolve(unit, max_limbs=policy.max_limbs, isotropic_friction=env_cfg.isotropic_friction)
        return policy.max_limbs, [_row_of(m) for m, _ in pairs]
    ((morph, _),) = resolve(unit, max_limbs=UNBOUNDED_LIMBS, isotropic_friction=env_cfg.isotropic_friction)
    row = _row_of(morph)
    if morph.num_limbs <= policy.max_limbs:
        return policy.max_limbs, [row]
    if policy.fixed_limbs:
        row.error = (
            f"{morph.num_limbs} limbs, but the checkpoint's {policy.config.network.kind} network takes at most "
            f"{policy.max_limbs} (env.max_limbs it was trained with)"
        )
        return policy.max_limbs, [row]
    row.note = f"padded to {morph.num_limbs} limbs (trained with {policy.max_limbs})"
    return morph.num_limbs, [row]


def _row_of(morph) -> BodyResult:
    return BodyResult(body=morph.name, family=morph.family, limbs=morph.num_limbs, source=morph.source)


def make_env(
    policy: Policy,
    body: str,
    num_envs: int,
    max_limbs: int,
    *,
    episode_length: int | None = None,
    task: str | None = None,
    backend: str | None = None,
    num_threads: int | None = None,
    training_aids: bool = False,
):
    """A BatchedEnv of `body` (one entry) for `policy`: its task, frame skip and friction, no autoreset,
    and the published task: a training run's `training_*` aids (tilt limit, progress weight, tilt
    penalty, target spread, torso damping) are dropped unless `training_aids` (then it is the run's
    own training task as it stood at the policy's checkpoint: a fading torso damping at the strength
    of that step, not the full strength it started from); its `base_controller` is kept, as part of
    the controller."""
    from equirl.envs.batched import BatchedEnv

    cfg = policy.config.env
    config = dataclasses.replace(
        cfg if training_aids else cfg.without_training_aids(),
        bodies=(body,),
        num_envs=num_envs,
        max_limbs=max_limbs,
        autoreset=False,
        episode_length=episode_length or cfg.episode_length,
        task=task or cfg.task,
        backend=backend or cfg.backend,
        num_threads=num_threads if num_threads is not None else cfg.num_threads,
    )
    env = BatchedEnv(config)
    if training_aids and policy.step is not None and policy.step >= 0:
        env.set_training_progress(policy.step)
    return env


def episode_runner(env, policy: Policy):
    """run(agent_state, key) -> (return [B], length [B], end code [B], end reasons [B]): one episode per
    environment; end reasons is the bit mask of task.END_REASONS."""
    limit = env.config.episode_length

    def run(agent_state, key):
        b = env.num_envs
        state = env.reset(key)
        zeros_f = jnp.zeros(b, state.reward.dtype)
        empty = (zeros_f, jnp.zeros(b, jnp.int32), jnp.full(b, TIME_LIMIT, jnp.int32), jnp.zeros(b, jnp.int32))

        def fold(acc, step, end):
            s = step.after
            why = jnp.where(s.info["unstable"], UNSTABLE, jnp.where(s.terminated, FELL, TIME_LIMIT))
            now = (s.info["episode_return"], s.info["episode_length"], why, s.info["end_reasons"])
            return tuple(jnp.where(end, new, old) for new, old in zip(now, acc))

        acting = rollout.deterministic(lambda obs: policy.act(agent_state, obs))
        return rollout.run_episodes(env, state, acting, key, fold, empty, limit)

    return run


def _batch_key(seed: int, batch: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), batch)


def evaluate(
    policy_or_run_dir,
    bodies: Sequence[str],
    episodes: int = 10,
    seeds: Sequence[int] = (0,),
    *,
    batch_size: int = 64,
    step: int | None = None,
    episode_length: int | None = None,
    task: str | None = None,
    backend: str | None = None,
    num_threads: int | None = None,
    training_aids: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[BodyResult]:
    """Evaluate a policy (or a run directory's checkpoint) on `bodies`, deterministically.

    bodies: body names, suites ("zero_shot", "walker_zero_shot", ...), MJCF
      paths, or random:COUNT:SEED.
    episodes: episodes per body and seed; `seeds` draw different initial
      states and targets. Up to `batch_size` episodes run at once.
    episode_length, task, backend: override the training environment's.
    training_aids: keep the run's `training_*` aids (its own training task) instead of
      evaluating on the published task.
    Returns one BodyResult per body, in order; bodies that could not be
    evaluated carry an `error` instead of numbers.
    """
    if isinstance(bodies, str):
        bodies = (bodies,)
    if not bodies:
        raise ConfigError("bodies: at least one body is needed")
    for name, value in (("episodes", episodes), ("batch_size", batch_size)):
        check_int(name, value, 1)
    seeds = tuple(seeds)
    if not seeds or any(not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"seeds={seeds!r}: need at least one integer seed >= 0")
    policy = as_policy(policy_or_run_dir, step)
    log = log or (lambda message: None)

    results: list[BodyResult] = []
    for unit in _units(bodies):
        try:
            max_limbs, rows = plan_body(policy, unit)
        except Exception as err:  # unreadable file, unknown name, unsupported joints, ...
            results.append(BodyResult(body=unit, source=unit, error=_error_text(err)))
            log(f"{unit}: not evaluated ({results[-1].error})")
            continue
        todo = [r for r in rows if r.ok]
        results.extend(rows)
        for r in rows:
            if not r.ok:
                log(f"{r.body}: not evaluated ({r.error})")
        if not todo:
            continue
        start = time.perf_counter()
        try:
            _run_unit(
                policy,
                unit,
                rows,
                max_limbs,
                episodes,
                seeds,
                batch_size,
                dict(
                    episode_length=episode_length,
                    task=task,
                    backend=backend,
                    num_threads=num_threads,
                    training_aids=training_aids,
                ),
            )
        except EquirlError as err:
            for r in rows:
                r.error = r.error or _error_text(err)
        for r in rows:
            if r.ok:
                log(
                    f"{r.body}: return {r.return_mean:.1f} ± {r.return_std:.1f} over {r.episodes} episodes "
                    f"({time.perf_counter() - start:.1f} s)"
                )
    return results


def _run_unit(policy, unit, rows, max_limbs, episodes, seeds, batch_size, env_kw) -> None:
    n_bodies = len(rows)
    per_batch = min(episodes, max(1, batch_size // n_bodies))
    n_batches = math.ceil(episodes / per_batch)
    env = make_env(policy, unit, n_bodies * per_batch, max_limbs, **env_kw)
    try:
        run = jax.jit(episode_runner(env, policy))
        rets = [[] for _ in range(n_bodies)]
        lens = [[] for _ in range(n_bodies)]
        codes = [[] for _ in range(n_bodies)]
        reasons = [[] for _ in range(n_bodies)]
        for seed in seeds:
            for batch in range(n_batches):
                ret, length, code, why = jax.device_get(run(policy.state, _batch_key(seed, batch)))
                take = min(per_batch, episodes - batch * per_batch)
                for b in range(n_bodies):
                    cols = np.flatnonzero(env.body_of_env == b)[:take]
                    rets[b].extend(np.asarray(ret)[cols].tolist())
                    lens[b].extend(np.asarray(length)[cols].tolist())
                    codes[b].extend(np.asarray(code)[cols].tolist())
                    reasons[b].extend(np.asarray(why)[cols].tolist())
    finally:
        env.close()
    for b, row in enumerate(rows):
        r, n, c = np.asarray(rets[b], np.float64), np.asarray(lens[b]), np.asarray(codes[b])
        row.episodes = int(r.size)
        row.returns = [float(x) for x in r]
        row.return_mean, row.return_std = float(r.mean()), float(r.std())
        row.length_mean = float(n.mean())
        row.fell, row.time_limit, row.unstable = (int(np.sum(c == k)) for k in (FELL, TIME_LIMIT, UNSTABLE))
        fell = jnp.asarray(np.asarray(reasons[b], np.int32)[c == FELL])
        counts = np.asarray(reason_counts(fell, jnp.ones(fell.shape, bool)))
        row.fell_by = {name: int(n) for name, n in zip(END_REASONS, counts) if n}
        row.padded_limbs = int(env.num_limbs)
