"""Typed, validated configuration of a training run.

A `TrainConfig` nests the environment (`EnvConfig`), the networks
(`NetworkConfig`), one block per algorithm and the run's bookkeeping. Every
value is checked when the config is built, so a bad file or override fails
before anything compiles. YAML files in configs/ hold these fields; see
`equirl.agents.train.load_train_config` for overrides. Which block an
algorithm reads is declared in `equirl.agents.registry`.
"""

from __future__ import annotations

import dataclasses

from equirl.checks import check_bool, check_float, check_int
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from equirl.nn.config import NetworkConfig


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
    # Rewards divided by a running std of the discounted return (clipped to +-10),
    # as stable-baselines3's VecNormalize does, then multiplied by reward_scale.
    normalize_rewards: bool = False
    # The observation statistics the epochs normalise with. False (brax's order): the
    # statistics with this rollout already merged in, so the first minibatch's ratio is not
    # exactly 1 wherever the statistics moved. True: those the rollout was collected with
    # (every ratio starts at 1, as in stable-baselines3, which stores normalised
    # observations); the rollout is merged in after the epochs.
    epochs_use_collection_stats: bool = False
    # Adam's epsilon (optax's default 1e-8; stable-baselines3 and cleanrl use 1e-5 for PPO).
    adam_eps: float = 1e-8
    # Start the policy (and its observation normaliser) from a run directory or a shipped
    # controller (`equirl.agents.start`); the value function starts fresh, and learns alone
    # for the first `actor_warmup_iterations` iterations so that the first advantages the
    # started policy sees come from a value function of its own returns.
    init_actor: str = ""
    actor_warmup_iterations: int = 0
    # > 0: the learning rate adapts to this KL per minibatch (RSL-RL's adaptive schedule:
    # divided by 1.5 above twice the target, multiplied by 1.5 below half of it, kept within
    # [min(1e-5, learning_rate), 1e-2]); a fixed rate moves a narrow Gaussian (small sigma) by
    # huge KLs.
    desired_kl: float = 0.0

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
        check_float("adam_eps", self.adam_eps, 0.0, open_low=True)
        check_int("actor_warmup_iterations", self.actor_warmup_iterations, 0)
        check_float("desired_kl", self.desired_kl, 0.0)
        if self.desired_kl > 0 and self.anneal_learning_rate is True:
            raise ConfigError("desired_kl > 0 adapts the learning rate; it cannot also anneal (anneal_learning_rate)")
        if not isinstance(self.init_actor, str):
            raise ConfigError(f"init_actor={self.init_actor!r}: must be a run directory or a controller name")
        for name in (
            "anneal_learning_rate",
            "normalize_advantages",
            "normalize_observations",
            "normalize_rewards",
            "epochs_use_collection_stats",
        ):
            check_bool(name, getattr(self, name))


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig:
    """The loop every off-policy learner shares (`equirl.agents.offpolicy`).

    One iteration steps every environment `steps_per_iteration` times, stores
    the transitions in a device-resident replay buffer of `buffer_size`
    transitions (all environments together), then takes
    `updates_per_iteration` gradient steps on batches of `batch_size` n-step
    transitions (`n_step` = 1: the usual one-step target). Updates per
    collected transition = updates_per_iteration / (steps_per_iteration * num_envs).
    The buffer holds buffer_size rounded down to a multiple of num_envs, so that
    an environment's steps stay num_envs rows apart across the ring's wrap.

    gamma and n_step together: a target bootstraps from n steps ahead discounted
    by gamma**n_step. CrossQ has no target network, and on the hopper suite its
    critic ran away at gamma 0.995 with 3-step returns (0.985) in 2 of 2 seeds,
    but stayed bounded with 5-step returns (0.975, the hopper preset's since;
    the other crossq presets' 0.99 and 3 steps: 0.970). A longer horizon wants
    a longer n_step with it (results/offpolicy/investigation.md, *A longer horizon*).

    freeze_normalizer_at: with normalize_observations, the observation
    statistics stop moving once this many environment steps were collected
    (0: they follow the data for the whole run). Moving statistics re-scale
    every stored transition as the policy changes what it sees.

    observation_std_floor: with normalize_observations, the least std each scalar
    channel is divided by (its own units; 0: none), so that a channel that barely
    moves is not blown up (`equirl.agents.normalization.normalize`).

    mirror_probability: the chance that each sampled transition is replaced by
    its image under a random vertical mirror (`equirl.envs.symmetry`: vectors
    reflected, left and right limbs and hinges relabelled) -- symmetry as data
    for networks that do not have it built in. Only mirror-symmetric bodies are
    mirrored.
    """

    buffer_size: int = 300_000
    batch_size: int = 256
    learning_starts: int = 5_000
    steps_per_iteration: int = 1
    updates_per_iteration: int = 8
    gamma: float = 0.99
    n_step: int = 1
    reward_scale: float = 1.0
    normalize_observations: bool = True
    freeze_normalizer_at: int = 0
    observation_std_floor: float = 0.0
    init_actor: str = ""
    mirror_probability: float = 0.0

    def __post_init__(self):
        check_float("mirror_probability", self.mirror_probability, 0.0, 1.0)
        if not isinstance(self.init_actor, str):
            raise ConfigError(f"init_actor={self.init_actor!r}: must be a run directory or a controller name")
        for name in ("buffer_size", "batch_size", "steps_per_iteration", "updates_per_iteration", "n_step"):
            check_int(name, getattr(self, name), 1)
        check_int("learning_starts", self.learning_starts, 0)
        check_int("freeze_normalizer_at", self.freeze_normalizer_at, 0)
        check_float("observation_std_floor", self.observation_std_floor, 0.0)
        check_float("reward_scale", self.reward_scale, 0.0, open_low=True)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_bool("normalize_observations", self.normalize_observations)
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size}: larger than buffer_size={self.buffer_size}")


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Soft actor-critic: twin Q, Polyak target networks, automatic entropy tuning.

    target_entropy_per_dim: the entropy target is this times the number of
      driven action dimensions of each body (SimbaV2 uses -0.5).
    policy_delay: critic steps per actor (and temperature) step.
    adam_beta1: Adam's first-moment decay for all three optimisers.
    actor_warmup_updates: gradient steps of the critic alone before the actor's
      (and temperature's) first step: a started actor (offpolicy.init_actor) is
      not moved by a critic that has not yet learned its values.
    prior_weight: with offpolicy.init_actor, the actor's loss adds this times the
      squared distance (summed over driven dimensions) between its deterministic
      action and the starting policy's, so fine-tuning stays near a policy known
      to work unless the critic pays for leaving it.
    """

    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    alpha_learning_rate: float = 3e-4
    initial_alpha: float = 0.1
    target_entropy_per_dim: float = -1.0
    tau: float = 0.005
    max_grad_norm: float = 10.0
    policy_delay: int = 1
    adam_beta1: float = 0.9
    actor_warmup_updates: int = 0
    prior_weight: float = 0.0

    def __post_init__(self):
        for name in (
            "actor_learning_rate",
            "critic_learning_rate",
            "alpha_learning_rate",
            "initial_alpha",
            "max_grad_norm",
        ):
            check_float(name, getattr(self, name), 0.0, open_low=True)
        check_float("target_entropy_per_dim", self.target_entropy_per_dim)
        check_float("tau", self.tau, 0.0, 1.0, open_low=True)
        check_int("policy_delay", self.policy_delay, 1)
        check_float("adam_beta1", self.adam_beta1, 0.0, 1.0)
        check_int("actor_warmup_updates", self.actor_warmup_updates, 0)
        check_float("prior_weight", self.prior_weight, 0.0)


@dataclasses.dataclass(frozen=True)
class CrossQConfig(SACConfig):
    """CrossQ (Bhatt et al., ICLR 2024): SAC without target networks, with batch
    renormalisation in the critic (network.q_norm=batch_renorm) and one joint
    critic pass over [(s, a); (s', pi(s'))]. Defaults are the paper's: Adam
    with beta1 0.5 and lr 1e-3, policy delay 3. `tau` is unused."""

    actor_learning_rate: float = 1e-3
    critic_learning_rate: float = 1e-3
    alpha_learning_rate: float = 1e-3
    initial_alpha: float = 1.0
    policy_delay: int = 3
    adam_beta1: float = 0.5


@dataclasses.dataclass(frozen=True)
class TD3Config:
    """TD3 (Fujimoto et al., 2018): deterministic actor (the squashed mean),
    twin Q with clipped double-Q targets, target policy smoothing, delayed
    actor and target updates. Defaults are 3D-SGRL's published settings."""

    actor_learning_rate: float = 1e-4
    critic_learning_rate: float = 1e-4
    tau: float = 0.005
    policy_delay: int = 2
    exploration_noise: float = 0.126
    target_noise: float = 0.2
    target_noise_clip: float = 0.5
    max_grad_norm: float = 0.1

    def __post_init__(self):
        for name in ("actor_learning_rate", "critic_learning_rate", "max_grad_norm"):
            check_float(name, getattr(self, name), 0.0, open_low=True)
        for name in ("exploration_noise", "target_noise", "target_noise_clip"):
            check_float(name, getattr(self, name), 0.0)
        check_float("tau", self.tau, 0.0, 1.0, open_low=True)
        check_int("policy_delay", self.policy_delay, 1)


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """DAgger from trained teachers into one student (`equirl.agents.distill`; the student is
    the `network` block, SET by default).

    teachers: run directories; each labels the bodies it was trained on, and
      every body of the student's environment needs one. "lqr" names the
      scripted balance controller (`equirl.envs.lqr`), which
      labels every body (it stands, it does not walk).
    The student acts; with probability beta (per environment and step,
    beta_start at first, falling linearly to 0 over beta_decay_steps
    environment steps) the teacher's action is taken instead. The teacher
    labels every visited state with its deterministic action, and the
    labelled states go to a store of buffer_size. Each iteration steps every
    environment steps_per_iteration times, then takes updates_per_iteration
    Adam steps (learning_rate, gradients clipped at max_grad_norm) on batches
    of batch_size, once learning_starts states are stored. The loss is the
    squared error between the student's and the teacher's actions on driven
    dimensions.
    """

    teachers: tuple[str, ...] = ()
    buffer_size: int = 100_000
    batch_size: int = 256
    learning_starts: int = 1_000
    steps_per_iteration: int = 1
    updates_per_iteration: int = 1
    learning_rate: float = 3e-4
    max_grad_norm: float = 1.0
    beta_start: float = 1.0
    beta_decay_steps: int = 20_000
    normalize_observations: bool = True

    def __post_init__(self):
        if isinstance(self.teachers, (list, str)):
            object.__setattr__(
                self, "teachers", (self.teachers,) if isinstance(self.teachers, str) else tuple(self.teachers)
            )
        if not all(isinstance(t, str) and t for t in self.teachers):
            raise ConfigError(f"teachers={self.teachers!r}: must be run directories or 'lqr' (strings)")
        for name in ("buffer_size", "batch_size", "steps_per_iteration", "updates_per_iteration"):
            check_int(name, getattr(self, name), 1)
        check_int("learning_starts", self.learning_starts, 0)
        check_int("beta_decay_steps", self.beta_decay_steps, 1)
        check_float("learning_rate", self.learning_rate, 0.0, open_low=True)
        check_float("max_grad_norm", self.max_grad_norm, 0.0, open_low=True)
        check_float("beta_start", self.beta_start, 0.0, 1.0)
        check_bool("normalize_observations", self.normalize_observations)
        if self.batch_size > self.buffer_size:
            raise ConfigError(f"batch_size={self.batch_size}: larger than buffer_size={self.buffer_size}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Length, seed and bookkeeping of a run.

    total_steps: environment steps (all environments together) to train for.
    out_dir: where logs and checkpoints go (runs/<name> by default).
    log_every_steps / checkpoint_every_steps: in environment steps (all
      environments); an iteration logs or saves when it crosses a multiple of
      them, whatever the algorithm's iteration size. A checkpoint is always
      logged first.
    keep_checkpoints: the newest N checkpoints are kept.
    equivariance_every_steps: how often (environment steps) the policy's
      equivariance error is measured and logged; 0 never.
    max_q_bias, divergence_window: a run stops (keeping its last checkpoint)
      once its critic's mean Q exceeds the mean discounted Monte-Carlo return
      of its finished episodes (`q/bias`) by more than max_q_bias for
      divergence_window environment steps in a row; 0 turns this off. Losses
      that are not finite stop it at once.
    """

    name: str = "run"
    total_steps: int = 1_000_000
    seed: int = 0
    out_dir: str = ""
    log_every_steps: int = 2_000
    checkpoint_every_steps: int = 20_000
    keep_checkpoints: int = 3
    equivariance_every_steps: int = 10_000
    progress: bool = True
    max_q_bias: float = 1000.0
    divergence_window: int = 20_000

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(f"name={self.name!r}: must be a non-empty string without '/'")
        check_int("total_steps", self.total_steps, 1)
        check_int("seed", self.seed, 0)
        if not isinstance(self.out_dir, str):
            raise ConfigError(f"out_dir={self.out_dir!r}: must be a path string")
        check_int("log_every_steps", self.log_every_steps, 1)
        check_int("checkpoint_every_steps", self.checkpoint_every_steps, 1)
        check_int("keep_checkpoints", self.keep_checkpoints, 1)
        check_int("equivariance_every_steps", self.equivariance_every_steps, 0)
        check_bool("progress", self.progress)
        check_float("max_q_bias", self.max_q_bias, 0.0)
        check_int("divergence_window", self.divergence_window, 0)

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
    offpolicy: OffPolicyConfig = dataclasses.field(default_factory=OffPolicyConfig)
    sac: SACConfig = dataclasses.field(default_factory=SACConfig)
    crossq: CrossQConfig = dataclasses.field(default_factory=CrossQConfig)
    td3: TD3Config = dataclasses.field(default_factory=TD3Config)
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def __post_init__(self):
        from equirl.agents.registry import ALGORITHMS, spec

        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm={self.algorithm!r}: must be one of {tuple(ALGORITHMS)}")
        for name, cls in (
            ("env", EnvConfig),
            ("network", NetworkConfig),
            ("ppo", PPOConfig),
            ("offpolicy", OffPolicyConfig),
            ("sac", SACConfig),
            ("crossq", CrossQConfig),
            ("td3", TD3Config),
            ("distill", DistillConfig),
            ("run", RunConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        spec(self.algorithm).check(self)
