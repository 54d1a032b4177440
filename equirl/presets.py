"""The shipped training presets: one `TrainConfig` per suite x algorithm x network.

`configs/make_train_configs.py` writes them to configs/train/*.yaml and the
quickstart job trains one of them, so both read the tables here and cannot
drift apart. Sizes suit a 2-core CPU; scale num_envs and widths up on a GPU.
"""

from __future__ import annotations

import dataclasses

from equirl.agents.config import (
    CrossQConfig,
    OffPolicyConfig,
    PPOConfig,
    RunConfig,
    SACConfig,
    TD3Config,
    TrainConfig,
)
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from equirl.nn.config import NetworkConfig

# Preset names: the registry's algorithms, plus td3_sgrl, TD3 with exactly the
# settings 3D-SGRL published (with SET networks; `sgrl_td3`).
ALGORITHMS = ("ppo", "sac", "crossq", "td3", "td3_sgrl")
OFF_POLICY = ("sac", "crossq", "td3", "td3_sgrl")

# suite: (task, max_limbs = most limbs of any of its bodies, see `equirl bodies`, bodies)
SUITES = {
    "hopper": ("v1", 5, 3),
    "walker": ("v1", 7, 6),
    "humanoid": ("v1", 9, 6),
    "cheetah": ("v1", 14, 8),
    "CWHH": ("v1", 14, 23),
}

# PPO environments per suite: where possible a multiple of the body count, so
# every body gets the same share of the batch.
PPO_ENVS = {"hopper": 64, "walker": 96, "humanoid": 96, "cheetah": 96, "CWHH": 92}
PPO_STEPS = {"hopper": 2_000_000, "walker": 5_000_000, "humanoid": 5_000_000, "cheetah": 5_000_000, "CWHH": 10_000_000}
# Off-policy: one environment per body and one update per collected transition
# (updates_per_iteration = num_envs), as in every sample-efficient learner
# checked against its published numbers (benchmarks/reference_gym.py).
OFF_POLICY_STEPS = {
    "hopper": 300_000,
    "walker": 300_000,
    "humanoid": 1_000_000,
    "cheetah": 1_000_000,
    "CWHH": 2_500_000,
}

NETWORKS = {
    "set": NetworkConfig(
        kind="set", width=64, depth=2, heads=4, vector_channels=16, invariant_channels=8, vector_key_channels=4
    ),
    "mlp": NetworkConfig(kind="mlp", mlp_hidden=(256, 256)),
    "mlp_heading": NetworkConfig(kind="mlp_heading", mlp_hidden=(256, 256)),
}
# The same sizes as SET (the vector fields are unused by the plain transformer).
NETWORKS["transformer"] = dataclasses.replace(NETWORKS["set"], kind="transformer")


def preset_name(suite: str, algorithm: str, network: str) -> str:
    return f"{suite}_{algorithm}_{network}"


def preset_names() -> list[tuple[str, str, str]]:
    """Every (suite, algorithm, network) with a preset: td3_sgrl only with SET, as published."""
    return [(s, a, n) for s in SUITES for a in ALGORITHMS for n in NETWORKS if a != "td3_sgrl" or n == "set"]


# The off-policy SET preset (td3_sgrl excepted): a depth-1 SET actor, exactly equivariant, with a
# heading-MLP critic (exactly invariant to rotations about gravity, not to reflections). Chosen by
# learning per unit of compute (README, *Network cost*, issue 16): on the hopper suite it matched the
# full SET preset per environment step at 12k steps (121 vs 93) at a quarter of its update cost.
OFF_POLICY_SET = dict(depth=1, q_kind="mlp_heading")


# CrossQ's compact inputs on the hopper and walker suites: the mlp kinds read each limb's hinge
# angles, rates and world-frame axes, its height and position from the torso, plus the torso's
# velocities, instead of every channel (the limbs' own velocities, gravity, the target direction and
# the range scalars left out). Measured with CrossQ, one seed per figure, against every channel:
# walker suite 284 and 266 against 245 over 50-60k (episodes 100-108 steps against 85), walker_7_full
# alone 296 against 147 at 20-30k, hopper suite 412 against 364 at 100k (417-480 read raw);
# results/offpolicy/investigation.md, "Which inputs?" and after. The SET-actor suite runs read them too.
# Unmeasured on the humanoids and cheetahs, whose presets keep every channel.
COMPACT_INPUTS = dict(
    hinge_rate_inputs=True,
    fixed_vector_scales=False,
    mlp_vector_inputs=("position_from_torso", "hinge_axis_x", "hinge_axis_y", "hinge_axis_z"),
    mlp_scalar_inputs=("angle_x", "angle_y", "angle_z", "height"),
    mlp_torso_vector_inputs=("linear_velocity", "angular_velocity"),
)
COMPACT_SUITES = ("hopper", "walker")


def _network(suite: str, algorithm: str, network: str) -> NetworkConfig:
    base = NETWORKS[network]
    if network == "set" and algorithm in OFF_POLICY and algorithm != "td3_sgrl":
        base = dataclasses.replace(base, **OFF_POLICY_SET)
    if algorithm == "crossq" and suite in COMPACT_SUITES and network in ("mlp_heading", "set"):
        # The SET preset's critic is a heading-MLP, so it reads them too (and its actor the rates).
        base = dataclasses.replace(base, **COMPACT_INPUTS)
    if algorithm == "ppo":
        # PPO starts with less action noise (std 0.37): the bodies fall easily.
        return dataclasses.replace(base, log_std_init=-1.0)
    if algorithm == "crossq":
        # CrossQ's critic: batch renorm, wider than the actor (the paper uses 2048; 512 fits a CPU).
        # No renorm of the raw input: with it the critic ran away on a single walker, without it
        # it stayed bounded, and the walker suite learned alike either way (README, issue 15).
        q_hidden = (512, 512) if network.startswith("mlp") or base.q_kind.startswith("mlp") else ()
        return dataclasses.replace(base, squash=True, q_norm="batch_renorm", q_hidden=q_hidden, q_input_norm=False)
    if algorithm == "sac":
        # A LayerNorm critic: the one SAC variant measured stable on the 3D hoppers (README, issue 15).
        return dataclasses.replace(base, squash=True, q_norm="layer")
    return dataclasses.replace(base, squash=True)


def train_preset(suite: str, algorithm: str, network: str) -> TrainConfig:
    """The shipped config `configs/train/<suite>_<algorithm>_<network>.yaml`."""
    for what, value, known in (
        ("suite", suite, SUITES),
        ("algorithm", algorithm, ALGORITHMS),
        ("network", network, NETWORKS),
    ):
        if value not in known:
            raise ConfigError(f"no training preset for {what}={value!r}; known: {', '.join(known)}")
    task, max_limbs, bodies = SUITES[suite]
    off = algorithm in OFF_POLICY
    num_envs = bodies if off else PPO_ENVS[suite]
    offpolicy = OffPolicyConfig(updates_per_iteration=num_envs)
    if algorithm == "crossq":
        # 3-step returns: without target networks the 3D hoppers' critic ran away with 1-step
        # targets and stayed bounded with 3-step ones (README, issue 15).
        # Half the replay mirrored: no crossq preset's critic is mirror-invariant (the SET
        # preset's is a heading-MLP), and a mirrored transition is a free second sample. walker_7_full
        # alone at 100k: 1,392 and 856 against 800 and 989; hopper suite 439 against 364
        # (results/offpolicy/investigation.md, "Mirrored replay on the 3D walker").
        offpolicy = dataclasses.replace(offpolicy, n_step=3, mirror_probability=0.5)
        if suite == "hopper":
            # A longer horizon for the hoppers: γ 0.995 with 5-step returns, whose bootstrap is
            # discounted by γ⁵ = 0.975 (3 steps: 0.985, and the critic ran away in 2 of 2 seeds).
            # Heading-MLP, 2 seeds: deterministic 744 and 633 at 300k and 260k against 597 and 590
            # for γ 0.99 at 300k, episodes 24-34% longer (results/offpolicy/investigation.md,
            # "A longer horizon"); the other hopper networks take it unmeasured. The walker suite
            # keeps γ 0.99: with γ 0.995 and 5 steps, 411 against 438 at 160k (2 seeds each).
            # Frame skip 8 with γ 0.99 (the same horizon per simulated second) ends level with this
            # at half the updates (758 and 654 deterministic, doubled, at 320k of simulated v1 steps;
            # "Action repeat to 160k"); the preset keeps the v1 task's frame skip 4.
            offpolicy = dataclasses.replace(offpolicy, gamma=0.995, n_step=5)
    td3 = TD3Config()
    if algorithm == "td3_sgrl":
        # 3D-SGRL's published TD3: these are TD3Config's defaults; about one update per transition.
        offpolicy = OffPolicyConfig(batch_size=256, learning_starts=5_000, updates_per_iteration=num_envs)
    return TrainConfig(
        algorithm="td3" if algorithm == "td3_sgrl" else algorithm,
        env=EnvConfig(bodies=(suite,), num_envs=num_envs, task=task, max_limbs=max_limbs),
        network=_network(suite, algorithm, network),
        ppo=PPOConfig(rollout_length=32, epochs=4, minibatches=8),
        offpolicy=offpolicy,
        sac=SACConfig(),
        crossq=CrossQConfig(),
        td3=td3,
        run=RunConfig(
            name=preset_name(suite, algorithm, network),
            total_steps=OFF_POLICY_STEPS[suite] if off else PPO_STEPS[suite],
            # RunConfig's intervals, in environment steps: a log row every 2k, a probe every 10k,
            # a checkpoint every 20k, whatever the algorithm.
        ),
    )
