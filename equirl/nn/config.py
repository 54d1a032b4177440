"""Typed, validated configuration of the policy and value networks."""

from __future__ import annotations

import dataclasses

from equirl.checks import check_bool, check_float, check_int
from equirl.errors import ConfigError
from equirl.observation import SCALAR_NAMES, VECTOR_NAMES

KINDS = ("set", "mlp", "mlp_heading", "transformer")
ALL_CHANNELS = "all"
CHANNEL_FIELDS = ("mlp_vector_inputs", "mlp_scalar_inputs", "mlp_torso_vector_inputs")
# Kinds built for exactly max_limbs limb slots (the others take any number of limbs).
FIXED_LIMB_KINDS = ("mlp", "mlp_heading")
Q_NORMS = ("default", "none", "layer", "batch_renorm")


MLP_ACTIVATIONS = ("gelu", "relu", "tanh")


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Which network to build and how big.

    kind: "set" (the subequivariant transformer over limbs), "mlp" (an MLP on
      the flattened padded observation), "mlp_heading" (the same MLP on
      observations turned into the target-direction frame), "transformer" (a
      plain transformer over limbs that reads vector coordinates as scalars).
    width, depth, heads: scalar channels per limb, blocks, attention heads
      (set and transformer; the two are comparable at equal values).
    ff_multiplier: hidden size of the feed-forward blocks, in units of width.
    vector_channels: 3D vector channels per limb (set only).
    invariant_channels: vector channels mixed into the Gram matrix each layer
      reads its invariants from (set only); with gravity and the target
      direction this gives (k+2)(k+3)/2 invariants per limb.
    vector_key_channels: vector channels per head in the attention queries and
      keys, whose inner products across limbs enter the logits (set only).
    max_tree_distance: limb-tree distances above this share one attention bias.
    mlp_hidden: hidden layer sizes of the mlp and mlp_heading kinds.
    mlp_activation: their hidden layers' nonlinearity, "gelu", "relu" or "tanh"
      (stable-baselines3's tuned PPO uses relu).
    squash: tanh-squash actions (SAC turns it on itself; PPO may, and then keeps
      the pre-squash samples for its ratio); otherwise a Gaussian whose samples
      the environment clips to [-1, 1].
    log_std_init, log_std_min, log_std_max: the invariant log standard
      deviation starts near log_std_init and stays in [min, max].
    mean_init_scale: variance scale (fan-in) of the action mean's output layer.
      The default 1e-4 starts every policy at a near-zero mean torque; 1/3 is
      PyTorch's default Linear initialisation, which stable-baselines3's tuned
      PPO uses (ortho_init=False), so its first policy already varies with the state.
    mlp_init_scale: variance scale (fan-in) of the mlp kinds' actor and critic hidden
      layers and of the value head: 1 is flax's LeCun normal (the default); 1/3 has
      the variance of PyTorch's default Linear initialisation (stable-baselines3's).
    state_dependent_std: the log-std is read from each limb's invariant
      features (SAC's convention); false: one learned log-std per hinge slot
      (x, y, z), shared by every limb and state (PPO's usual convention, as in
      stable-baselines3).
    q_norm: the normaliser inside the Q network: "default" (none in the MLP
      kinds, a LayerNorm before the pooled head of set and transformer),
      "none", "layer" (LayerNorm after every hidden layer: the LayerNorm-critic
      SAC) or "batch_renorm" (CrossQ; `equirl.nn.batch_renorm`).
    q_input_norm: with q_norm=batch_renorm, also renormalise the MLP critic's input
      (CrossQ's published critic does). Measured on walker_7_full alone: with it
      the critic runs away (mean Q 2,869 against a Monte-Carlo return of 35 at
      16k steps), without it Q stays within 2x of that return (README, issue 15).
    q_norm_after_activation: where the MLP critic's q_norm sits in each hidden layer:
      false, Dense -> norm -> activation (ours since the first CrossQ); true, Dense ->
      activation -> norm, as sbx's CrossQ critic. Measured on Humanoid-v5 (results/offpolicy/
      investigation.md, "A second CrossQ on Humanoid"), where sbx climbs from 50k steps and ours did not.
    q_hidden: hidden sizes of the MLP kinds' Q network; empty: mlp_hidden.
    renorm_momentum, renorm_warmup: batch renorm's running-statistics momentum
      and the number of train steps it runs as plain batch norm.
    q_kind: the Q network's own kind ("same": `kind`). An off-policy learner
      pays most of an update in the Q network, so a SET actor may learn with a
      cheaper critic, e.g. "mlp_heading" (exactly invariant to rotations about
      gravity, not to reflections); the policy stays what `kind` is.
    q_width: the Q network's width when it is a set or transformer (0: width).
    hinge_rate_inputs: every network also reads each hinge's angular rate
      (`equirl.observation.hinge_rates`: solved from the limbs' angular velocities and
      hinge axes, invariant, so SET stays exactly equivariant). The observation has no
      joint velocities; gymnasium's hopper hands them to the learner directly. CrossQ on
      our hopper_4 task reading the heading-MLP's input through a plain MLP fell within 24
      steps at 10k without them, lasted 377 with them (results/offpolicy/investigation.md,
      "Which part of the observation?"); off by default (on in the crossq hopper and walker
      presets, with the other compact inputs: `equirl.presets.COMPACT_INPUTS`).
    fixed_vector_scales: multiply the vector channels by the observation table's fixed
      scales (`equirl.observation.VECTOR_CHANNELS`: velocities x 0.1, gravity / 9.81), which
      suits raw observations. With the observation normaliser (every preset) the channels
      already have unit RMS length and the fixed scales shrink the velocities again, to
      ~0.05 std against ~1 for angles and heights (measured on hopper_4); false reads the
      normalised vectors as they are.
    mlp_vector_inputs, mlp_scalar_inputs: the observation channels (names from
      `equirl.observation.VECTOR_NAMES` / `SCALAR_NAMES`) the mlp kinds read in every
      limb slot; ("all",): every channel. The limb mask is always read. set and
      transformer read every channel.
    mlp_parent_inputs: the mlp kinds read every slot's one-hot parent index (it tells the
      bodies apart). False drops it where it is constant, e.g. gymnasium's Humanoid-v5
      through reference_gym's flat adapter: 22 of each of 21 slots' 43 critic inputs.
    mlp_torso_vector_inputs: vector channels the mlp kinds read from the torso only
      (e.g. its linear and angular velocity, when the limbs' own are left out).
      Why: on hopper_4 with the training aids and pitch motors only, CrossQ reading these 82
      numbers (hinge angles, rates and axes, heights, positions; the torso's velocities)
      without the observation normaliser reached 884-1,098 deterministic at 20k in 3 of 5
      seeds (the plain-MLP reference loop: 2 of 5), through the normaliser 235-337 in 5 of 5
      (results/offpolicy/investigation.md, "Which inputs?"; there the passive side hinges'
      angles barely move and standardising blows them up); the three-hopper suite: 554 at 300k with the normaliser
      (one seed), 397-416 at 100k read raw (two seeds), the normalised run's 385 there. Off
      by default: on the hopper suite they are not measurably better than every channel.
    """

    kind: str = "set"
    width: int = 128
    depth: int = 3
    heads: int = 4
    ff_multiplier: int = 2
    vector_channels: int = 32
    invariant_channels: int = 8
    vector_key_channels: int = 4
    max_tree_distance: int = 8
    mlp_hidden: tuple[int, ...] = (256, 256)
    mlp_activation: str = "gelu"
    squash: bool = False
    log_std_init: float = -0.5
    log_std_min: float = -5.0
    log_std_max: float = 1.0
    mean_init_scale: float = 1e-4
    mlp_init_scale: float = 1.0
    state_dependent_std: bool = True
    q_norm: str = "default"
    q_input_norm: bool = True
    q_norm_after_activation: bool = False
    q_hidden: tuple[int, ...] = ()
    renorm_momentum: float = 0.99
    renorm_warmup: int = 100_000
    q_kind: str = "same"
    q_width: int = 0
    hinge_rate_inputs: bool = False
    fixed_vector_scales: bool = True
    mlp_vector_inputs: tuple[str, ...] = (ALL_CHANNELS,)
    mlp_scalar_inputs: tuple[str, ...] = (ALL_CHANNELS,)
    mlp_torso_vector_inputs: tuple[str, ...] = ()
    mlp_parent_inputs: bool = True

    def __post_init__(self):
        for name in ("mlp_hidden", "q_hidden", *CHANNEL_FIELDS):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r}: must be one of {KINDS}")
        for name in (
            "width",
            "depth",
            "heads",
            "ff_multiplier",
            "vector_channels",
            "invariant_channels",
            "vector_key_channels",
            "max_tree_distance",
        ):
            check_int(name, getattr(self, name), 1)
        if self.width % self.heads:
            raise ConfigError(f"width={self.width}: must be divisible by heads={self.heads}")
        if self.vector_channels % self.heads:
            raise ConfigError(f"vector_channels={self.vector_channels}: must be divisible by heads={self.heads}")
        if (
            not isinstance(self.mlp_hidden, tuple)
            or not self.mlp_hidden
            or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in self.mlp_hidden)
        ):
            raise ConfigError(f"mlp_hidden={self.mlp_hidden!r}: must be a non-empty tuple of integers >= 1")
        if not isinstance(self.q_hidden, tuple) or any(
            not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in self.q_hidden
        ):
            raise ConfigError(f"q_hidden={self.q_hidden!r}: must be a tuple of integers >= 1 (empty: mlp_hidden)")
        if self.mlp_activation not in MLP_ACTIVATIONS:
            raise ConfigError(f"mlp_activation={self.mlp_activation!r}: must be one of {MLP_ACTIVATIONS}")
        if self.q_kind not in ("same",) + KINDS:
            raise ConfigError(f"q_kind={self.q_kind!r}: must be 'same' or one of {KINDS}")
        check_int("q_width", self.q_width, 0)
        if self.q_width % self.heads:
            raise ConfigError(f"q_width={self.q_width}: must be divisible by heads={self.heads}")
        if self.q_norm not in Q_NORMS:
            raise ConfigError(f"q_norm={self.q_norm!r}: must be one of {Q_NORMS}")
        check_float("renorm_momentum", self.renorm_momentum, 0.0, 1.0)
        check_int("renorm_warmup", self.renorm_warmup, 0)
        check_bool("squash", self.squash)
        check_bool("q_input_norm", self.q_input_norm)
        check_bool("q_norm_after_activation", self.q_norm_after_activation)
        check_bool("state_dependent_std", self.state_dependent_std)
        check_bool("hinge_rate_inputs", self.hinge_rate_inputs)
        check_bool("fixed_vector_scales", self.fixed_vector_scales)
        check_bool("mlp_parent_inputs", self.mlp_parent_inputs)
        for name, names, allow_all in (
            ("mlp_vector_inputs", VECTOR_NAMES, True),
            ("mlp_scalar_inputs", SCALAR_NAMES, True),
            ("mlp_torso_vector_inputs", VECTOR_NAMES, False),
        ):
            _check_channels(name, getattr(self, name), names, allow_all)
        if self.kind not in FIXED_LIMB_KINDS and self.q_kind not in FIXED_LIMB_KINDS:
            for name in CHANNEL_FIELDS:
                if getattr(self, name) != getattr(NetworkConfig, name):
                    raise ConfigError(
                        f"{name}={list(getattr(self, name))!r}: only the mlp kinds choose their inputs; "
                        f"kind={self.kind!r} with q_kind={self.q_kind!r} builds none"
                    )
            if not self.mlp_parent_inputs:
                raise ConfigError(
                    f"mlp_parent_inputs=false: only the mlp kinds read a flat input; kind={self.kind!r} "
                    f"with q_kind={self.q_kind!r} builds none"
                )
        for name in ("log_std_init", "log_std_min", "log_std_max"):
            check_float(name, getattr(self, name))
        check_float("mean_init_scale", self.mean_init_scale, 1e-12, 10.0)
        check_float("mlp_init_scale", self.mlp_init_scale, 1e-12, 10.0)
        if not self.log_std_min < self.log_std_init < self.log_std_max:
            raise ConfigError(
                f"log_std_init={self.log_std_init!r}: must lie strictly between "
                f"log_std_min={self.log_std_min!r} and log_std_max={self.log_std_max!r}"
            )


def _check_channels(field: str, value, names: tuple[str, ...], allow_all: bool) -> None:
    """A tuple of distinct channel names from `names` (or ("all",) where allowed)."""
    if allow_all and value == (ALL_CHANNELS,):
        return
    if not isinstance(value, tuple) or any(not isinstance(n, str) for n in value):
        raise ConfigError(f"{field}={value!r}: must be a list of channel names")
    unknown = [n for n in value if n not in names]
    if unknown or len(set(value)) != len(value):
        allowed = ", ".join(names) + (f"; or [{ALL_CHANNELS}]" if allow_all else "")
        what = f"unknown {unknown}" if unknown else "a channel named twice"
        raise ConfigError(f"{field}={list(value)!r}: {what}; channels: {allowed}")


def channel_indices(value: tuple[str, ...], names: tuple[str, ...]) -> tuple[int, ...] | None:
    """The indices of the named channels, in the observation's order; None for ("all",)."""
    if value == (ALL_CHANNELS,):
        return None
    return tuple(i for i, n in enumerate(names) if n in value)
