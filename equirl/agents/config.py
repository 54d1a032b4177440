"""Typed, validated configuration of a training run.

A `TrainConfig` nests the environment (`EnvConfig`), the networks
(`NetworkConfig`), one block per algorithm and the run's bookkeeping. Every
value is checked when the config is built, so a bad file or override fails
before anything compiles. YAML files in configs/ hold these fields; see
`equirl.agents.config.load_train_config` for overrides.
"""

from __future__ import annotations

import dataclasses

from equirl.checks import check_bool, check_float, check_int
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from equirl.nn.config import NetworkConfig

ALGORITHMS = ("ppo", "sac")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Proximal policy optimisation (clipped surrogate, GAE).

    One iteration collects `rollout_length` steps from every environment, then
    runs `epochs` passes of `minibatches` minibatches over them.
    """

    rollout_length: int = 32
    epochs: int = 4
    minibatches: int = 4
    learning_rate: float = 3e-4
    anneal_learning_rate: bool = False
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_epsilon: float = 0.2
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    reward_scale: float = 0.1
    normalize_advantages: bool = True
    normalize_observations: bool = True

    def __post_init__(self):
        for name in ("rollout_length", "epochs", "minibatches"):
            check_int(name, getattr(self, name), 1)
        check_float("learning_rate", self.learning_rate, 0.0, open_low=True)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, open_low=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_float("clip_epsilon", self.clip_epsilon, 0.0, open_low=True)
        check_float("value_coef", self.value_coef, 0.0)
        check_float("entropy_coef", self.entropy_coef, 0.0)
        check_float("reward_scale", self.reward_scale, 0.0, open_low=True)
        for name in ("anneal_learning_rate", "normalize_advantages", "normalize_observations"):
            check_bool(name, getattr(self, name))


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Soft actor-critic: twin Q, target networks, automatic entropy tuning.

    One iteration steps every environment `steps_per_iteration` times, stores
    the transitions in a device-resident replay buffer of `buffer_size`
    transitions (all environments together), then takes
    `updates_per_iteration` gradient steps on batches of `batch_size`.
    target_entropy_per_dim: the entropy target is this times the number of
    driven action dimensions of each body.
    """

    buffer_size: int = 200_000
    batch_size: int = 256
    learning_starts: int = 5_000
    steps_per_iteration: int = 1
    updates_per_iteration: int = 8
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    alpha_learning_rate: float = 3e-4
    initial_alpha: float = 0.1
    target_entropy_per_dim: float = -1.0
    gamma: float = 0.99
    tau: float = 0.005
    max_grad_norm: float = 10.0
    reward_scale: float = 1.0
    normalize_observations: bool = True

    def __post_init__(self):
        for name in ("buffer_size", "batch_size", "steps_per_iteration", "updates_per_iteration"):
            check_int(name, getattr(self, name), 1)
        check_int("learning_starts", self.learning_starts, 0)
        for name in ("actor_learning_rate", "critic_learning_rate", "alpha_learning_rate", "initial_alpha",
                     "max_grad_norm", "reward_scale"):
            check_float(name, getattr(self, name), 0.0, open_low=True)
        check_float("target_entropy_per_dim", self.target_entropy_per_dim)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("tau", self.tau, 0.0, 1.0, open_low=True)
        check_bool("normalize_observations", self.normalize_observations)
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size}: larger than buffer_size={self.buffer_size}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Length, seed and bookkeeping of a run.

    total_steps: environment steps (all environments together) to train for.
    out_dir: where logs and checkpoints go (runs/<name> by default).
    checkpoint_every / log_every: in iterations.
    keep_checkpoints: the newest N checkpoints are kept.
    equivariance_every: how often (iterations) the policy's equivariance error
      is measured and logged; 0 never.
    """

    name: str = "run"
    total_steps: int = 1_000_000
    seed: int = 0
    out_dir: str = ""
    log_every: int = 1
    checkpoint_every: int = 20
    keep_checkpoints: int = 3
    equivariance_every: int = 20
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(f"name={self.name!r}: must be a non-empty string without '/'")
        check_int("total_steps", self.total_steps, 1)
        check_int("seed", self.seed, 0)
        if not isinstance(self.out_dir, str):
            raise ConfigError(f"out_dir={self.out_dir!r}: must be a path string")
        check_int("log_every", self.log_every, 1)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_int("keep_checkpoints", self.keep_checkpoints, 1)
        check_int("equivariance_every", self.equivariance_every, 0)
        check_bool("progress", self.progress)

    @property
    def directory(self) -> str:
        return self.out_dir or f"runs/{self.name}"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs."""

    algorithm: str = "ppo"
    env: EnvConfig = dataclasses.field(default_factory=lambda: EnvConfig(bodies=("hopper",), num_envs=48, max_limbs=5))
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    ppo: PPOConfig = dataclasses.field(default_factory=PPOConfig)
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def __post_init__(self):
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm={self.algorithm!r}: must be one of {ALGORITHMS}")
        for name, cls in (("env", EnvConfig), ("network", NetworkConfig), ("ppo", PPOConfig), ("sac", SACConfig),
                          ("run", RunConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.algorithm == "ppo":
            batch = self.env.num_envs * self.ppo.rollout_length
            if batch % self.ppo.minibatches:
                raise ConfigError(
                    f"ppo.minibatches={self.ppo.minibatches}: must divide env.num_envs * ppo.rollout_length = {batch}"
                )
