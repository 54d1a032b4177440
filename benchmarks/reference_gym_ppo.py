"""PPO's reference check: equirl's PPO agent, unchanged, on gymnasium's own Hopper-v5.

`equirl.agents.ppo.make_ppo` builds the agent `equirl train` runs (its compiled
rollout, GAE, clipped surrogate, normaliser and optimiser). Here its environment
is `GymEnv`: one gymnasium environment behind the `Env` protocol, whose reset and
step are ordered `io_callback`s, so the compiled rollout steps gymnasium itself
(autoreset on the host, the final observation of a truncated episode kept for
bootstrapping). Observations and actions go through reference_gym's flat adapter.

The settings are those of the tuned PPO of rl-baselines3-zoo for Hopper (2,410 at
1M steps): one environment, 512 steps per rollout, minibatches of 32, 5 epochs,
gamma 0.999, lambda 0.99, lr 9.8e-5, clip 0.2, gradient norm 0.7, value
coefficient 0.835, entropy coefficient 0.00229, initial log std -2, observations
normalised. The zoo also normalises rewards by a running return std: so does
this PPO with `--normalize-rewards` (ppo.normalize_rewards); without it, it
scales them by a constant (`--reward-scale`, 0.01). The zoo's log-std is one
learned number per action dimension; ours is read from the state unless
`--shared-std` (network.state_dependent_std=false).

    python benchmarks/reference_gym_ppo.py --steps 1000000 --seed 0

Flags that bring one more of stable-baselines3's details in, to find which one matters
(README, PPO reference table): --collection-stats (ratios start at 1), --sb3-optimizer
(Adam eps 1e-5, the full squared value error), --step-normalizer (VecNormalize's per-step
observation statistics, `HostNormalizer`), --mean-init-scale / --mlp-init-scale 0.3333 with
--shared-std (its policy initialisation).

Rows go to results/reference_gym/summary.csv like the off-policy learners'.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import io_callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gym_table import append, plot, write_table  # noqa: E402
from reference_gym import FlatAdapter  # noqa: E402

from equirl.agents.config import PPOConfig  # noqa: E402
from equirl.agents.ppo import make_ppo  # noqa: E402
from equirl.envs.batched import step_info  # noqa: E402
from equirl.nn import NetworkConfig, make_networks  # noqa: E402
from equirl.observation import Observation  # noqa: E402

ZOO = PPOConfig(
    rollout_length=512,
    epochs=5,
    minibatches=16,  # 512 / 16 = 32 per minibatch
    learning_rate=9.8e-5,
    max_grad_norm=0.7,
    gamma=0.999,
    gae_lambda=0.99,
    clip_epsilon=0.2,
    value_coef=0.835,
    entropy_coef=0.00229,
    reward_scale=0.01,
)


@struct.dataclass
class GymState:
    obs: Observation
    reward: jax.Array  # [1]
    terminated: jax.Array  # [1] bool
    truncated: jax.Array  # [1] bool
    info: dict


class HostNormalizer:
    """stable-baselines3's VecNormalize for observations, on the host: running mean and variance
    (from a count of 1e-4 at mean 0, variance 1) updated with every observation the environment
    returns, which is normalised with the updated statistics and clipped to +-10. The policy then
    stores normalised observations, so its statistics change every step, not once per rollout."""

    def __init__(self, dim: int):
        self.mean, self.var, self.count = np.zeros(dim), np.ones(dim), 1e-4

    def update(self, x: np.ndarray) -> None:
        delta, total = x - self.mean, self.count + 1
        self.mean = self.mean + delta / total
        self.var = (self.var * self.count + delta**2 * self.count / total) / total
        self.count = total

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10.0, 10.0).astype(np.float32)


class GymEnv:
    """One gymnasium environment behind `equirl.envs.base.Env`, stepped through io_callbacks."""

    def __init__(self, task: str, seed: int, host_normalizer: bool = False):
        self.gym = gym.make(task)
        self.adapter = FlatAdapter(self.gym.observation_space.shape[0], self.gym.action_space.shape[0])
        self.scale = float(self.gym.action_space.high[0])
        self.config = SimpleNamespace(task=task, episode_length=self.gym.spec.max_episode_steps, autoreset=True)
        self.morphologies = [SimpleNamespace(name=task)]
        self.body_of_env = np.zeros(1, np.int64)
        self.mesh = None
        self.seed, self.episode_return, self.episode_length = seed, 0.0, 0
        self.normalizer = HostNormalizer(self.adapter.obs_dim) if host_normalizer else None

    def _seen(self, x: np.ndarray, final: np.ndarray | None = None):
        """x (and a final observation) as the policy sees them, x taken into the statistics."""
        if self.normalizer is None:
            return x if final is None else (x, final)
        self.normalizer.update(x[0])
        return self.normalizer(x) if final is None else (self.normalizer(x), self.normalizer(final))

    num_envs = property(lambda self: 1)
    num_limbs = property(lambda self: self.adapter.limbs)
    action_shape = property(lambda self: (self.adapter.limbs, 3))

    def close(self) -> None:
        self.gym.close()

    def observation(self, x: jax.Array) -> Observation:
        return self.adapter.observation(x)  # [1, obs_dim] -> one environment's Observation

    # -- host side --------------------------------------------------------------------

    def _host_reset(self):
        x, _ = self.gym.reset(seed=self.seed)
        self.episode_return, self.episode_length = 0.0, 0
        return self._seen(x.astype(np.float32)[None])

    def _host_step(self, action):
        x, r, term, trunc, _ = self.gym.step(self.scale * np.asarray(action)[0, : self.adapter.act_dim])
        self.episode_return += float(r)
        self.episode_length += 1
        ended = (self.episode_return, self.episode_length)
        final = x.astype(np.float32)[None]
        if term or trunc:
            x, _ = self.gym.reset()
            self.episode_return, self.episode_length = 0.0, 0
        f32 = lambda v: np.asarray([v], np.float32)  # noqa: E731
        x, final = self._seen(x.astype(np.float32)[None], final)
        return (x, final, f32(r), np.asarray([term]), np.asarray([trunc and not term]),
                f32(ended[0]), np.asarray([ended[1]], np.int32))  # fmt: skip

    # -- the Env protocol ---------------------------------------------------------------

    def reset(self, key: jax.Array) -> GymState:
        del key  # gymnasium draws its own start states (seeded at construction)
        x = io_callback(self._host_reset, jax.ShapeDtypeStruct((1, self.adapter.obs_dim), jnp.float32), ordered=True)
        obs = self.observation(x)
        zeros, ints, false = jnp.zeros(1), jnp.zeros(1, jnp.int32), jnp.zeros(1, bool)
        return GymState(obs, zeros, false, false, step_info(obs, zeros, ints, ints, false, false, ints))

    def step(self, state: GymState, action: jax.Array) -> GymState:
        d = self.adapter.obs_dim
        shapes = (
            jax.ShapeDtypeStruct((1, d), jnp.float32),
            jax.ShapeDtypeStruct((1, d), jnp.float32),
            jax.ShapeDtypeStruct((1,), jnp.float32),
            jax.ShapeDtypeStruct((1,), bool),
            jax.ShapeDtypeStruct((1,), bool),
            jax.ShapeDtypeStruct((1,), jnp.float32),
            jax.ShapeDtypeStruct((1,), jnp.int32),
        )
        flat = jnp.clip(action.reshape(1, -1), -1.0, 1.0)
        x, final, reward, term, trunc, ret, length = io_callback(self._host_step, shapes, flat, ordered=True)
        obs, ints, false = self.observation(x), jnp.zeros(1, jnp.int32), jnp.zeros(1, bool)
        info = step_info(self.observation(final), ret, length, ints, false, false, ints)
        return GymState(obs, reward, term, trunc, info)


def evaluate(env: gym.Env, adapter: FlatAdapter, act, episodes: int, normalizer=None) -> float:
    scale, total = float(env.action_space.high[0]), 0.0
    seen = (lambda x: x) if normalizer is None else normalizer  # frozen statistics  # noqa: E731
    for _ in range(episodes):
        x, _ = env.reset()
        done = False
        while not done:
            a = act(adapter.observation(seen(x[None].astype(np.float32))))
            x, r, term, trunc, _ = env.step(scale * adapter.action(a[0]))
            total += r
            done = term or trunc
    return total / episodes


def run(
    task: str,
    steps: int,
    seed: int,
    eval_every: int,
    eval_episodes: int,
    reward_scale: float,
    shared_std: bool = False,
    normalize_rewards: bool = False,
    activation: str = "gelu",
    mean_init_scale: float = 1e-4,
    collection_stats: bool = False,
    sb3_optimizer: bool = False,
    host_normalizer: bool = False,
    mlp_init_scale: float = 1.0,
) -> list[dict]:
    env = GymEnv(task, seed, host_normalizer)
    eval_env = gym.make(task)
    eval_env.reset(seed=seed + 10_000)
    config = dataclasses.replace(
        ZOO,
        reward_scale=reward_scale,
        normalize_rewards=normalize_rewards,
        epochs_use_collection_stats=collection_stats,
    )
    if sb3_optimizer:  # torch's Adam with eps 1e-5 and an unhalved squared error under vf_coef
        config = dataclasses.replace(config, adam_eps=1e-5, value_coef=2 * ZOO.value_coef)
    if host_normalizer:  # the environment hands over normalised observations
        config = dataclasses.replace(config, normalize_observations=False)
    network = NetworkConfig(
        kind="mlp",
        mlp_hidden=(256, 256),
        mlp_activation=activation,
        log_std_init=-2.0,
        state_dependent_std=not shared_std,
        mean_init_scale=mean_init_scale,
        mlp_init_scale=mlp_init_scale,
    )
    name = "ppo" + ("_sharedstd" if shared_std else "") + ("_retnorm" if normalize_rewards else "")
    name += "" if activation == "gelu" else f"_{activation}"
    name += "" if mean_init_scale == 1e-4 else f"_meaninit{mean_init_scale:g}"
    name += "_collectionstats" if collection_stats else ""
    name += "_sb3optim" if sb3_optimizer else ""
    name += "_stepnorm" if host_normalizer else ""
    name += "" if mlp_init_scale == 1.0 else f"_mlpinit{mlp_init_scale:.4g}"
    networks = make_networks(network, env.num_limbs)
    iterations = steps // config.rollout_length
    agent = make_ppo(env, networks, config, iterations)
    state = jax.jit(agent.init)(jax.random.PRNGKey(seed))
    iteration = jax.jit(agent.iteration, donate_argnums=0)
    act = jax.jit(lambda s, o: agent.act(s, o))
    rows, start, returns = [], time.perf_counter(), []
    for i in range(1, iterations + 1):
        state, metrics = iteration(state)
        count = float(np.sum(metrics["episodes/count"]))
        if count:
            returns.append(float(np.sum(metrics["episodes/return_sum"])) / count)
        t = i * config.rollout_length
        if t // eval_every != (t - config.rollout_length) // eval_every or i == iterations:
            wall = time.perf_counter() - start
            score = evaluate(eval_env, env.adapter, lambda o: act(state, o), eval_episodes, env.normalizer)
            row = dict(task=task, algorithm=name, seed=seed, env_steps=t, eval_return=round(score, 1))
            rows.append(dict(row, wall_seconds=round(wall, 1)))
            append(rows[-1:])
            print(f"{task} {name} seed {seed}: {t} steps, eval {score:.0f}, train {np.mean(returns[-10:]):.0f}, "
                  f"{wall:.0f} s", flush=True)  # fmt: skip
    env.close()
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=100_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--reward-scale", type=float, default=0.01)
    parser.add_argument(
        "--shared-std", action="store_true", help="one learned log-std per action dimension (stable-baselines3's)"
    )
    parser.add_argument(
        "--normalize-rewards",
        action="store_true",
        help="rewards divided by a running return std, as the zoo's VecNormalize (--reward-scale then multiplies)",
    )
    parser.add_argument("--activation", default="gelu", help="the MLPs' nonlinearity (the zoo's: relu)")
    parser.add_argument(
        "--mean-init-scale",
        type=float,
        default=1e-4,
        help="variance scale of the action mean's output layer (1/3: PyTorch's default, the zoo's ortho_init=False)",
    )
    parser.add_argument(
        "--collection-stats",
        action="store_true",
        help="the epochs normalise with the statistics of the rollout's collection (ppo.epochs_use_collection_stats)",
    )
    parser.add_argument(
        "--sb3-optimizer",
        action="store_true",
        help="stable-baselines3's Adam epsilon (1e-5) and value loss (mean squared error, not half of it)",
    )
    parser.add_argument(
        "--step-normalizer",
        action="store_true",
        help="observations normalised on the host every step, as stable-baselines3's VecNormalize does",
    )
    parser.add_argument(
        "--mlp-init-scale",
        type=float,
        default=1.0,
        help="variance scale of the hidden layers and value head (1/3: PyTorch's default Linear)",
    )
    a = parser.parse_args(argv)
    run(
        a.task,
        a.steps,
        a.seed,
        a.eval_every,
        a.eval_episodes,
        a.reward_scale,
        a.shared_std,
        a.normalize_rewards,
        a.activation,
        a.mean_init_scale,
        a.collection_stats,
        a.sb3_optimizer,
        a.step_normalizer,
        a.mlp_init_scale,
    )
    plot()
    write_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
