"""Reference check: our off-policy update code on gymnasium's own Hopper-v5 (or Walker2d-v5).

A learner bug and a hard environment look the same on our 3D tasks. This
trains the very update rules `equirl train` uses (`equirl.agents.sac`,
`crossq`, `td3` through `offpolicy.make_learn`, MLP networks, the replay
buffer and the normaliser) on a task nobody here wrote, stepped by
gymnasium, so the result can be set beside published numbers (CrossQ on
Hopper: 2,764 at 100k steps, plain SAC 1,103; on Walker2d 3,914 and 690).

The flat observation adapter packs gymnasium's observation vector into the
invariant scalars of as many limb slots as needed (17 each) and its action
vector into their torque slots (3 each); vectors are zero. The MLP reads the
flattened slots, so it sees exactly the gymnasium vector (plus constants).

    python benchmarks/reference_gym.py --algorithm crossq --steps 100000 --seed 0
    python benchmarks/reference_gym.py --plot      # PNG from the summary CSV

Writes results/reference_gym/summary.csv (task, algorithm, seed, env_steps,
eval_return, wall_seconds, eval_length; appended, one row per evaluation) and curves.png.
Evaluation: every --eval-every steps, the deterministic policy for
--eval-episodes episodes on a separate environment. Each evaluation also
checkpoints the run in --runs (one folder per task, settings, algorithm and
seed); the same command goes on from there, and a larger --steps extends a
finished run (gymnasium's episode in progress is not saved: it restarts).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import re
import sys
import time
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from equirl.agents import normalization, offpolicy, replay
from equirl.agents.config import TrainConfig
from equirl.agents.policy import initial_normalizer, maybe_normalize
from equirl.agents.registry import spec
from equirl.errors import ConfigError
from equirl.nn import make_networks
from equirl.observation import NUM_SCALARS, NUM_VECTORS, Observation
from equirl.presets import train_preset
from equirl.runs import checkpoints

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gym_table import append, plot, write_table  # noqa: E402  (beside this script)
from gym_task import env_kwargs, task_label  # noqa: E402


@dataclasses.dataclass(frozen=True)
class FlatAdapter:
    """gymnasium vectors <-> per-limb Observation and [L, 3] torques."""

    obs_dim: int
    act_dim: int

    @property
    def limbs(self) -> int:
        return max(math.ceil(self.obs_dim / NUM_SCALARS), math.ceil(self.act_dim / 3))

    def observation(self, x) -> Observation:
        """[..., obs_dim] (numpy or traced JAX) -> Observation with leaves [..., L, ...]."""
        lead = x.shape[:-1]
        scalars = jnp.zeros(lead + (self.limbs * NUM_SCALARS,), jnp.float32).at[..., : self.obs_dim].set(x)
        action_mask = np.zeros(self.limbs * 3, bool)
        action_mask[: self.act_dim] = True
        return Observation(
            vectors=jnp.zeros(lead + (self.limbs, NUM_VECTORS, 3), jnp.float32),
            scalars=scalars.reshape(lead + (self.limbs, NUM_SCALARS)),
            limb_mask=jnp.ones(lead + (self.limbs,), bool),
            parent=jnp.full(lead + (self.limbs,), -1, jnp.int32),
            action_mask=jnp.broadcast_to(jnp.asarray(action_mask.reshape(self.limbs, 3)), lead + (self.limbs, 3)),
        )

    def action(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a).reshape(-1)[: self.act_dim]


def config_for(algorithm: str, overrides: list[str]) -> TrainConfig:
    """The hopper-suite preset of `algorithm` (MLP networks), with one environment."""
    from equirl.config_io import apply_overrides

    config = train_preset("hopper", algorithm, "mlp")
    # No mirrored replay: a flat gymnasium observation has no mirror tables (its tasks are planar).
    off = dataclasses.replace(config.offpolicy, updates_per_iteration=1, buffer_size=1_000_000, mirror_probability=0.0)
    config = dataclasses.replace(config, offpolicy=off)
    return apply_overrides(config, overrides) if overrides else config


def run(
    task: str,
    algorithm: str,
    steps: int,
    seed: int,
    eval_every: int,
    eval_episodes: int,
    overrides: list[str],
    kwargs: dict | None = None,
    run_dir: Path | None = None,
) -> list[dict]:
    """Train and evaluate; with `run_dir`, checkpoint at every evaluation and go on from the
    newest checkpoint there (a longer --steps extends a finished run)."""
    config = config_for(algorithm.split("_")[0], overrides)
    algo = spec(config.algorithm)
    off = config.offpolicy
    kwargs = kwargs or {}
    env, eval_env = gym.make(task, **kwargs), gym.make(task, **kwargs)
    task = task_label(task, kwargs)
    adapter = FlatAdapter(env.observation_space.shape[0], env.action_space.shape[0])
    scale = float(env.action_space.high[0])
    networks = make_networks(config.network, adapter.limbs)
    rule = algo.make_rule(networks, config)
    learn = offpolicy.make_learn(rule, off, row_stride=1)
    norm = lambda s, o: maybe_normalize(off.normalize_observations, s, o)  # noqa: E731

    key = jax.random.PRNGKey(seed)
    key, k_init = jax.random.split(key)
    obs0, _ = env.reset(seed=seed)
    eval_env.reset(seed=seed + 10_000)
    o = adapter.observation(obs0[None])
    zero_action = jnp.zeros((1, adapter.limbs, 3), jnp.float32)
    learner = jax.jit(rule.init)(k_init, o, zero_action)
    first = lambda x: x[0]  # noqa: E731
    example = offpolicy.Transition(
        jax.tree.map(first, o),
        zero_action[0],
        jnp.zeros(()),
        jax.tree.map(first, o),
        jnp.zeros((), bool),
        jnp.zeros((), bool),
    )
    buffer = replay.init(example, min(off.buffer_size, steps))
    normalizer = initial_normalizer()
    ready_at = max(off.learning_starts, off.batch_size)
    settings = dict(
        task=task, algorithm=algorithm, overrides=list(overrides), eval_every=eval_every, buffer_size=off.buffer_size
    )
    t0, wall0, ep_returns, manager, x = 0, 0.0, [], None, obs0
    if run_dir is not None:
        manager = checkpoints.open_manager(run_dir, keep=1)
        if checkpoints.has_checkpoints(run_dir):
            state = dict(learner=learner, buffer=buffer, normalizer=normalizer, key=key)
            state, t0, wall0, ep_returns = resume(manager, run_dir, state, example, settings, steps)
            learner, buffer, normalizer, key = state["learner"], state["buffer"], state["normalizer"], state["key"]
            x, _ = env.reset(seed=seed + t0)  # gymnasium's state is not saved: a fresh episode
            eval_env.reset(seed=seed + 10_000 + t0)

    @jax.jit
    def explore(learner, normalizer, obs, key):
        return rule.explore(learner, norm(normalizer, obs), key)

    @jax.jit
    def greedy(learner, normalizer, obs):
        return networks.actor.apply(learner.params.actor, norm(normalizer, obs)).mode()

    def skip(learner, buffer, normalizer, key):
        return learner, {name: jnp.zeros((), jnp.float32) for name in rule.stat_names}

    def store_and_learn(learner, buffer, normalizer, tr, key, learning):
        buffer = replay.insert(buffer, tr)
        if off.normalize_observations:
            normalizer = normalization.update(normalizer, tr.obs)
        # A traced cond, as the library's iteration: called directly, `learn` fuses its reads
        # of the buffer with the write above and XLA copies the whole donated buffer on every
        # step (Humanoid-v5: 470 MB at 60k rows, ~2-3x the update's cost).
        learner, stats = jax.lax.cond(learning, learn, skip, learner, buffer, normalizer, key)
        return learner, buffer, normalizer, stats

    step_fn = jax.jit(store_and_learn, donate_argnums=(0, 1))

    def evaluate() -> tuple[float, float]:
        """Mean return and episode length of the deterministic policy."""
        total, length = 0.0, 0
        for _ in range(eval_episodes):
            x, _ = eval_env.reset()
            done = False
            while not done:
                a = greedy(learner, normalizer, adapter.observation(x[None]))
                x, r, term, trunc, _ = eval_env.step(scale * adapter.action(a[0]))
                total += r
                length += 1
                done = term or trunc
        return total / eval_episodes, length / eval_episodes

    rows, start = [], time.perf_counter()
    rng = np.random.default_rng(seed)
    ep_return, q_mean = 0.0, float("nan")
    for t in range(t0 + 1, steps + 1):
        o = adapter.observation(x[None])
        if t <= off.learning_starts:
            a = np.zeros((1, adapter.limbs, 3), np.float32)
            a.reshape(-1)[: adapter.act_dim] = rng.uniform(-1, 1, adapter.act_dim)
        else:
            key, k = jax.random.split(key)
            a = np.asarray(explore(learner, normalizer, o, k))
        x2, r, term, trunc, _ = env.step(scale * adapter.action(a[0]))
        ep_return += r
        tr = offpolicy.Transition(
            o,
            jnp.asarray(a),
            jnp.asarray([r], jnp.float32),
            adapter.observation(x2[None]),
            jnp.asarray([term]),
            jnp.asarray([term or trunc]),
        )
        key, k = jax.random.split(key)
        learner, buffer, normalizer, stats = step_fn(learner, buffer, normalizer, tr, k, jnp.asarray(t >= ready_at))
        if t >= ready_at and t % 1000 == 0:
            q_mean = float(stats["q/mean"])
            if not math.isfinite(q_mean):
                print(f"{task} {algorithm} seed {seed}: diverged at {t} steps (mean Q {q_mean})", flush=True)
                break
        x = x2
        if term or trunc:
            ep_returns.append(ep_return)
            ep_return = 0.0
            x, _ = env.reset()
        if t % eval_every == 0:
            wall = wall0 + time.perf_counter() - start
            eval_return, eval_length = evaluate()
            row = dict(
                task=task,
                algorithm=algorithm,
                seed=seed,
                env_steps=t,
                eval_return=round(eval_return, 1),
                wall_seconds=round(wall, 1),
                eval_length=round(eval_length, 1),
            )
            rows.append(row)
            recent = np.mean(ep_returns[-10:]) if ep_returns else float("nan")
            print(
                f"{task} {algorithm} seed {seed}: {t} steps, eval {row['eval_return']} over {eval_length:.0f} steps, "
                f"train(last 10) "
                f"{recent:.0f}, mean Q {q_mean:.1f}, {wall:.0f} s",
                flush=True,
            )
            append(rows[-1:])
            if manager is not None:  # after the row: a run killed in between repeats it, never loses it
                state = dict(learner=learner, buffer=buffer, normalizer=normalizer, key=key)
                meta = dict(settings=settings, capacity=buffer.capacity, wall_seconds=wall, ep_returns=ep_returns[-10:])
                checkpoints.save(manager, t, state, meta)
    return rows


def run_directory(runs: str | Path, task: str, algorithm: str, seed: int) -> Path:
    """One folder per (task with its settings, algorithm, seed) under `runs`."""
    slug = re.sub(r"[^A-Za-z0-9.=-]+", "_", task).strip("_")[:60]
    return Path(runs) / f"{slug}-{hashlib.sha1(task.encode()).hexdigest()[:8]}_{algorithm}_s{seed}"


def resume(manager, run_dir: Path, state: dict, example, settings: dict, steps: int):
    """(state, steps done, wall seconds, recent training returns) of the newest checkpoint; a
    buffer sized for fewer steps grows (it never wrapped, so its rows are in order from 0)."""
    meta = checkpoints.read_meta(manager, manager.latest_step())
    if meta["settings"] != settings:
        raise ConfigError(f"{run_dir}: holds a run of {meta['settings']}, not {settings}; remove it or use --runs")
    target = dict(state, buffer=replay.init(example, meta["capacity"]))
    state, meta, t0 = checkpoints.restore_latest(manager, target, run_dir)
    if t0 >= steps:
        raise ConfigError(f"{run_dir}: already {t0} steps; ask for more than that (--steps)")
    old, capacity = state["buffer"], target["buffer"].capacity
    wanted = max(capacity, min(settings["buffer_size"], steps))
    if wanted > capacity:
        pad = lambda a: jnp.concatenate([a, jnp.zeros((wanted - capacity,) + a.shape[1:], a.dtype)])  # noqa: E731
        state["buffer"] = replay.ReplayBuffer(jax.tree.map(pad, old.data), position=old.size, size=old.size)
    print(f"{run_dir}: resuming at {t0} steps", flush=True)
    state = jax.tree.map(lambda a: jnp.array(a, copy=True), state)  # donation needs a buffer per leaf
    return state, t0, meta["wall_seconds"], list(meta["ep_returns"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Hopper-v5")
    parser.add_argument("--algorithm", default="crossq", help="sac, crossq, td3 (a suffix after _ names a variant)")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. network.q_hidden=[1024,1024]")
    parser.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        help="a gymnasium.make setting, e.g. healthy_angle_range=(-1,1); the task is then named with it",
    )
    parser.add_argument("--runs", default="runs/reference_gym", help="where run checkpoints go ('' for none)")
    parser.add_argument("--plot", action="store_true", help="only draw curves.png from summary.csv")
    args = parser.parse_args(argv)
    if not args.plot:
        kwargs = env_kwargs(args.env_kwarg)
        where = (
            run_directory(args.runs, task_label(args.task, kwargs), args.algorithm, args.seed) if args.runs else None
        )
        try:
            run(
                args.task,
                args.algorithm,
                args.steps,
                args.seed,
                args.eval_every,
                args.eval_episodes,
                args.set,
                kwargs,
                where,
            )
        except ConfigError as err:
            raise SystemExit(f"reference_gym: {err}") from None
    plot()
    write_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
