"""Trajectory datasets for world models: collect from the environments, load windows, apply flows.

    collect(CollectConfig(bodies=("hopper_3_shin",), out="runs/wm/data/hopper"))   # shards + metadata.json
    data = WindowDataset.load("runs/wm/data/hopper", window=16, split="train")
    batch = data.sample(rng, batch_size=32)            # Sequence [32, 16, L, ...] (numpy -> jax)
    batch = flowed(batch, key, FlowRange(0.02, 0.0))   # random observer flows, one per window

On disk: `shard_XXXX.npz` (a block of consecutive control steps of every
environment) and `metadata.json` (bodies, environments, steps, policy, seed,
limbs, control time step, shards). Arrays of a shard, E environments, S steps:
vectors [E, S, L, 8, 3], scalars [E, S, L, 17], actions [E, S, L, 3],
torso_position [E, S, 3], episode_start [E, S] (frame s is the first of an
episode: an autoreset happened before it), and per environment limb_mask
[E, L], parent [E, L], action_mask [E, L, 3], body [E].

A window never crosses an episode boundary or a shard boundary: after an
autoreset the next frame belongs to a new episode, so a window starting at s
is kept only if no frame s+1..s+T-1 starts an episode. (The last transition
of each episode, into the observation the environment reset away from, is
not recorded.) Observations are cropped to the largest body's limb count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from equirl.checks import check_float, check_int
from equirl.envs import rollout
from equirl.errors import ConfigError, EquirlError
from equirl.observation import Observation
from equirl.worldmodels.flows import ObserverFlow, apply_flow
from equirl.worldmodels.interface import FeatureStats, Sequence

METADATA = "metadata.json"
FORMAT_VERSION = 1
_ARRAYS = (
    "vectors",
    "scalars",
    "actions",
    "torso_position",
    "episode_start",
    "limb_mask",
    "parent",
    "action_mask",
    "body",
)


@dataclasses.dataclass(frozen=True)
class CollectConfig:
    """What to record.

    bodies: body names or suites (as EnvConfig.bodies); num_envs: environments
    stepped together (round-robin over bodies); steps: control steps per
    environment; policy: "random" (uniform torques in [-1, 1], held for
    `action_repeat` steps) or the path of a training run directory (its newest
    checkpoint acts, sampling from its action distribution); shard_steps:
    steps per shard; episode_length: the time limit.
    """

    bodies: tuple[str, ...] = ("hopper_3_shin", "walker_2_right_leg_left_knee")
    out: str = "runs/wm/data/default"
    num_envs: int = 8
    steps: int = 1000
    policy: str = "random"
    action_repeat: int = 1
    shard_steps: int = 500
    episode_length: int = 1000
    seed: int = 0
    task: str = "v1"

    def __post_init__(self):
        if isinstance(self.bodies, str):
            object.__setattr__(self, "bodies", (self.bodies,))
        object.__setattr__(self, "bodies", tuple(self.bodies))
        if not self.bodies:
            raise ConfigError("collect.bodies: at least one body is needed")
        for name in ("num_envs", "steps", "action_repeat", "shard_steps", "episode_length"):
            check_int(f"collect.{name}", getattr(self, name), 1)
        check_int("collect.seed", self.seed, 0)
        if not isinstance(self.policy, str) or not self.policy:
            raise ConfigError(f"collect.policy={self.policy!r}: must be 'random' or a run directory")
        if not isinstance(self.task, str) or self.task not in ("v1", "v2"):
            raise ConfigError(f"collect.task={self.task!r}: must be 'v1' or 'v2'")


def _policy_fn(config: CollectConfig, num_limbs: int):
    """(act(obs, key) -> actions, max_limbs the env must be padded to, description)."""
    if config.policy == "random":
        return None, num_limbs, "random"
    from equirl.agents.saved_runs import load_run

    run_config, state, agent = load_run(config.policy)

    def act(obs, key):
        return agent.act(state, obs, key, deterministic=False)

    return act, run_config.env.max_limbs, f"run:{config.policy}"


def collect(config: CollectConfig, log=print) -> Path:
    """Record trajectories to config.out (shards + metadata.json); returns the folder."""
    from equirl.envs.batched import UNBOUNDED_LIMBS, BatchedEnv
    from equirl.envs.bodies import largest_limb_count
    from equirl.envs.config import EnvConfig

    out = Path(config.out)
    if config.policy != "random" and not (Path(config.policy) / "checkpoints").is_dir():
        raise ConfigError(f"collect.policy={config.policy!r}: not 'random' and not a run directory (no checkpoints/)")
    if (out / METADATA).exists():
        raise ConfigError(f"{out}: already holds a dataset ({METADATA}); choose another --out")
    limbs = largest_limb_count(config.bodies, UNBOUNDED_LIMBS)
    act, max_limbs, description = _policy_fn(config, limbs)
    if limbs > max_limbs:
        raise ConfigError(f"collect.policy={config.policy!r}: its network takes {max_limbs} limbs, a body has {limbs}")
    env = BatchedEnv(
        EnvConfig(
            bodies=config.bodies,
            num_envs=config.num_envs,
            max_limbs=max_limbs,
            episode_length=config.episode_length,
            task=config.task,
            backend="native",
        )
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
        shards = _record(env, act, config, limbs, out, log)
        meta = {
            "version": FORMAT_VERSION,
            "bodies": [m.name for m in env.morphologies],
            "body_of_env": [int(b) for b in env.body_of_env],
            "num_envs": config.num_envs,
            "steps": config.steps,
            "policy": description,
            "action_repeat": config.action_repeat,
            "seed": config.seed,
            "task": config.task,
            "episode_length": config.episode_length,
            "num_limbs": limbs,
            "control_dt": float(env.tables.dt[0]) if np.ndim(env.tables.dt) else float(env.tables.dt),
            "shards": shards,
        }
        (out / METADATA).write_text(json.dumps(meta, indent=1))
    finally:
        env.close()
    return out


def _record(env, act, config: CollectConfig, limbs: int, out: Path, log) -> list[str]:
    repeat = config.action_repeat

    hold_base = jax.random.PRNGKey(config.seed + 1)

    def policy_from(t0):
        def policy(obs, key, t):
            if act is not None:
                return act(obs, key), ()
            # Random torques are held for `action_repeat` steps: one draw per hold, keyed by its index.
            hold_key = jax.random.fold_in(hold_base, (t0 + t) // repeat)
            return jax.random.uniform(hold_key, (env.num_envs,) + env.action_shape, minval=-1.0, maxval=1.0), ()

        return policy

    def record(step):
        before = step.before
        action = step.action * before.obs.action_mask  # as the environment applies it
        return before.obs.vectors, before.obs.scalars, action, before.qpos[:, :3], before.steps == 0

    @jax.jit
    def chunk(state, key, t0):  # -> (state, key, records)
        return rollout.unroll(env, state, policy_from(t0), key, config.shard_steps, record)

    key = jax.random.PRNGKey(config.seed)
    key, k_reset = jax.random.split(key)
    state = env.reset(k_reset)
    mask = np.asarray(state.obs.limb_mask)
    if mask[:, limbs:].any() or not all((row[: row.sum()]).all() for row in mask):
        raise EquirlError("collect: padding limbs are not trailing; cannot crop observations")
    shards, done, start = [], 0, time.perf_counter()
    while done < config.steps:
        state, key, (vectors, scalars, actions, position, first) = chunk(state, key, jnp.int32(done))
        take = min(config.shard_steps, config.steps - done)
        swap = lambda x: np.swapaxes(np.asarray(x), 0, 1)[:, :take]  # noqa: E731 [S, E] -> [E, S]
        name = f"shard_{len(shards):04d}.npz"
        np.savez_compressed(
            out / name,
            vectors=swap(vectors)[:, :, :limbs].astype(np.float32),
            scalars=swap(scalars)[:, :, :limbs].astype(np.float32),
            actions=swap(actions)[:, :, :limbs].astype(np.float32),
            torso_position=swap(position).astype(np.float32),
            episode_start=swap(first),
            limb_mask=mask[:, :limbs],
            parent=np.asarray(state.obs.parent)[:, :limbs],
            action_mask=np.asarray(state.obs.action_mask)[:, :limbs],
            body=np.asarray(env.body_of_env, np.int32),
        )
        shards.append(name)
        done += take
        rate = done * env.num_envs / (time.perf_counter() - start)
        log(f"collect: {done}/{config.steps} steps x {env.num_envs} envs ({rate:,.0f} env steps/s) -> {out / name}")
    return shards


# --- loading ------------------------------------------------------------------------


def read_metadata(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        meta = json.loads((path / METADATA).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not a world-model dataset (no {METADATA}; run `equirl wm collect`)") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path / METADATA}: not valid JSON ({err})") from None
    if meta.get("version") != FORMAT_VERSION:
        raise ConfigError(f"{path / METADATA}: format version {meta.get('version')!r}, expected {FORMAT_VERSION}")
    return meta


def _load_shard(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file) as data:
            arrays = {k: data[k] for k in _ARRAYS}
    except FileNotFoundError:
        raise ConfigError(f"{file}: shard listed in {METADATA} is missing") from None
    except (KeyError, ValueError, OSError) as err:
        raise ConfigError(f"{file}: unreadable shard ({type(err).__name__}: {err})") from None
    return arrays


@dataclasses.dataclass
class WindowDataset:
    """All windows of `window` frames of one split of a dataset, in memory.

    split "train" keeps the first (1 - test_fraction) of every shard's steps,
    "test" the rest, "all" everything; windows lie within one part.
    """

    shards: list[dict[str, np.ndarray]]
    starts: np.ndarray  # [N, 3] (shard, env, step) of each window's first frame
    window: int
    meta: dict

    @staticmethod
    def load(path, window: int, split: str = "train", test_fraction: float = 0.2) -> "WindowDataset":
        check_int("window", window, 2)
        check_float("test_fraction", test_fraction, 0.0, 1.0)
        if split not in ("train", "test", "all"):
            raise ConfigError(f"split={split!r}: must be 'train', 'test' or 'all'")
        meta = read_metadata(path)
        shards = [_load_shard(Path(path) / name) for name in meta["shards"]]
        return WindowDataset.from_shards(shards, meta, window, split, test_fraction, str(path))

    @staticmethod
    def from_shards(
        shards, meta: dict, window: int, split: str = "train", test_fraction: float = 0.2, path: str = "dataset"
    ) -> "WindowDataset":
        """The windows of already loaded shards (e.g. `data.shards`, for another window length)."""
        starts = []
        for i, shard in enumerate(shards):
            steps = shard["actions"].shape[1]
            cut = int(round(steps * (1.0 - test_fraction)))
            lo, hi = {"train": (0, cut), "test": (cut, steps), "all": (0, steps)}[split]
            # A window [s, s + window) is whole if no frame after its first starts an episode.
            starts_episode = shard["episode_start"][:, lo:hi].astype(np.int64)
            if hi - lo < window:
                continue
            inner = np.cumsum(starts_episode, axis=1)
            # episode starts among frames s+1 .. s+window-1
            later = inner[:, window - 1 :] - inner[:, : hi - lo - window + 1]
            env, s = np.nonzero(later == 0)
            starts.append(np.stack([np.full_like(env, i), env, s + lo], -1))
        starts = np.concatenate(starts) if starts else np.zeros((0, 3), np.int64)
        if not len(starts):
            raise ConfigError(
                f"{path}: no window of {window} frames in the {split!r} split (episodes or shards too short)"
            )
        return WindowDataset(shards, starts, window, meta)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def num_limbs(self) -> int:
        return int(self.meta["num_limbs"])

    def windows(self, index: np.ndarray) -> Sequence:
        """The windows with the given indices, as one Sequence (jax arrays)."""
        picks = self.starts[np.asarray(index)]
        t = np.arange(self.window)
        parts = {
            k: []
            for k in ("vectors", "scalars", "actions", "torso_position", "limb_mask", "parent", "action_mask", "body")
        }
        for shard_id in np.unique(picks[:, 0]):
            rows = picks[picks[:, 0] == shard_id]
            shard = self.shards[shard_id]
            env, steps = rows[:, 1:2], rows[:, 2:3] + t
            for k in ("vectors", "scalars", "actions", "torso_position"):
                parts[k].append(shard[k][env, steps])
            for k in ("limb_mask", "parent", "action_mask", "body"):
                parts[k].append(shard[k][rows[:, 1]])
        order = np.argsort(np.concatenate([np.nonzero(picks[:, 0] == s)[0] for s in np.unique(picks[:, 0])]))
        arr = {k: np.concatenate(v)[order] for k, v in parts.items()}
        per_time = lambda x: np.broadcast_to(x[:, None], (x.shape[0], self.window) + x.shape[1:])  # noqa: E731
        obs = Observation(
            vectors=jnp.asarray(arr["vectors"]),
            scalars=jnp.asarray(arr["scalars"]),
            limb_mask=jnp.asarray(per_time(arr["limb_mask"])),
            parent=jnp.asarray(per_time(arr["parent"])),
            action_mask=jnp.asarray(per_time(arr["action_mask"])),
        )
        return Sequence(
            obs, jnp.asarray(arr["actions"]), jnp.asarray(arr["torso_position"]), jnp.asarray(arr["body"], jnp.int32)
        )

    def sample(self, rng: np.random.Generator, batch_size: int) -> Sequence:
        return self.windows(rng.integers(0, len(self), batch_size))

    def stats(self, max_windows: int = 4096) -> FeatureStats:
        """Feature scales (FeatureStats) from up to max_windows evenly spaced windows."""
        index = np.linspace(0, len(self) - 1, min(len(self), max_windows)).astype(np.int64)
        return feature_stats(self.windows(index))


def feature_stats(seq: Sequence) -> FeatureStats:
    """Per-feature scales of a batch of windows (over real limbs and all frames)."""
    mask = np.asarray(seq.obs.limb_mask, np.float64)[..., None]  # [B, T, L, 1]
    count = max(mask.sum(), 1.0)
    scalars = np.asarray(seq.obs.scalars, np.float64)
    mean = (scalars * mask).sum((0, 1, 2)) / count
    var = (np.square(scalars - mean) * mask).sum((0, 1, 2)) / count
    std = np.sqrt(var)
    std = np.where(std > 1e-6, std, 1.0)  # constant features (ranges, limb type): unit scale
    lengths = np.sum(np.square(np.asarray(seq.obs.vectors, np.float64)), -1)  # [B, T, L, 8]
    rms = np.sqrt((lengths * mask).sum((0, 1, 2)) / count)
    rms = np.where(rms > 1e-6, rms, 1.0)
    step = np.diff(np.asarray(seq.torso_position, np.float64), axis=1)
    disp = np.sqrt(np.mean(np.sum(np.square(step), -1))) if step.size else 1.0
    return FeatureStats(
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(std, jnp.float32),
        jnp.asarray(rms, jnp.float32),
        jnp.asarray(max(disp, 1e-6), jnp.float32),
    )


# --- observer flows on the fly --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlowRange:
    """Random observer flows: yaw rate uniform in [-max_yaw_rate, max_yaw_rate]
    (rad/step), horizontal velocity of uniform direction and a speed uniform in
    [0, max_speed] (m/step). Zero and zero: no flow."""

    max_yaw_rate: float = 0.0
    max_speed: float = 0.0

    def __post_init__(self):
        check_float("max_yaw_rate", self.max_yaw_rate, 0.0)
        check_float("max_speed", self.max_speed, 0.0)

    def sample(self, key: jax.Array, batch: int) -> ObserverFlow:
        k_rate, k_dir, k_speed = jax.random.split(key, 3)
        rate = jax.random.uniform(k_rate, (batch,), minval=-self.max_yaw_rate, maxval=self.max_yaw_rate)
        angle = jax.random.uniform(k_dir, (batch,), minval=-jnp.pi, maxval=jnp.pi)
        speed = jax.random.uniform(k_speed, (batch,), maxval=self.max_speed)
        velocity = jnp.stack([speed * jnp.cos(angle), speed * jnp.sin(angle), jnp.zeros_like(speed)], -1)
        return ObserverFlow(rate, velocity)


def flowed(seq: Sequence, key: jax.Array, flows: FlowRange) -> Sequence:
    """seq with one random flow of `flows` applied per window (unchanged if the range is zero)."""
    if flows.max_yaw_rate == 0.0 and flows.max_speed == 0.0:
        return seq
    return apply_flow(flows.sample(key, seq.actions.shape[0]), seq)
