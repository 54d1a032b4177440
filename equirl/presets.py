"""The shipped training presets: one `TrainConfig` per suite x algorithm x network.

`configs/make_train_configs.py` writes them to configs/train/*.yaml and the
quickstart job trains one of them, so both read the tables here and cannot
drift apart. Sizes suit a 2-core CPU; scale num_envs and widths up on a GPU.
"""

from __future__ import annotations

import dataclasses

from equirl.agents.config import PPOConfig, RunConfig, SACConfig, TrainConfig
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from equirl.nn.config import NetworkConfig

ALGORITHMS = ("ppo", "sac")

# suite: (task, max_limbs = most limbs of any of its bodies, see `equirl bodies`)
SUITES = {
    "hopper": ("v1", 5),  # 3 bodies
    "walker": ("v1", 7),  # 6 bodies
    "humanoid": ("v1", 9),  # 6 bodies
    "cheetah": ("v1", 14),  # 8 bodies
    "CWHH": ("v1", 14),  # 23 bodies (cheetahs up to 14 limbs)
}

# Environments per suite and algorithm: where possible a multiple of the body
# count, so every body gets the same share of the batch.
NUM_ENVS = {
    ("hopper", "ppo"): 64,  # 22/21/21: close enough, and a power of two batch
    ("walker", "ppo"): 96,
    ("humanoid", "ppo"): 96,
    ("cheetah", "ppo"): 96,
    ("CWHH", "ppo"): 92,
    ("hopper", "sac"): 12,
    ("walker", "sac"): 12,
    ("humanoid", "sac"): 12,
    ("cheetah", "sac"): 16,
    ("CWHH", "sac"): 46,
}

TOTAL_STEPS = {
    ("hopper", "ppo"): 2_000_000,
    ("walker", "ppo"): 5_000_000,
    ("humanoid", "ppo"): 5_000_000,
    ("cheetah", "ppo"): 5_000_000,
    ("CWHH", "ppo"): 10_000_000,
    ("hopper", "sac"): 1_000_000,
    ("walker", "sac"): 2_000_000,
    ("humanoid", "sac"): 2_000_000,
    ("cheetah", "sac"): 2_000_000,
    ("CWHH", "sac"): 3_000_000,
}

NETWORKS = {
    "set": NetworkConfig(kind="set", width=64, depth=2, heads=4, vector_channels=16, invariant_channels=8,
                         vector_key_channels=4),
    "mlp": NetworkConfig(kind="mlp", mlp_hidden=(256, 256)),
    "mlp_heading": NetworkConfig(kind="mlp_heading", mlp_hidden=(256, 256)),
}
# The same sizes as SET (the vector fields are unused by the plain transformer).
NETWORKS["transformer"] = dataclasses.replace(NETWORKS["set"], kind="transformer")

# Bookkeeping intervals, in iterations. A PPO iteration is num_envs * 32 steps;
# a SAC iteration one step of every environment, so it logs and saves less often.
RUN_INTERVALS = {
    "ppo": dict(log_every=1, checkpoint_every=20, equivariance_every=20),
    "sac": dict(log_every=100, checkpoint_every=5000, equivariance_every=1000),
}


def preset_name(suite: str, algorithm: str, network: str) -> str:
    return f"{suite}_{algorithm}_{network}"


def train_preset(suite: str, algorithm: str, network: str) -> TrainConfig:
    """The shipped config `configs/train/<suite>_<algorithm>_<network>.yaml`."""
    for what, value, known in (("suite", suite, SUITES), ("algorithm", algorithm, ALGORITHMS),
                               ("network", network, NETWORKS)):
        if value not in known:
            raise ConfigError(f"no training preset for {what}={value!r}; known: {', '.join(known)}")
    task, max_limbs = SUITES[suite]
    return TrainConfig(
        algorithm=algorithm,
        env=EnvConfig(bodies=(suite,), num_envs=NUM_ENVS[suite, algorithm], task=task, max_limbs=max_limbs),
        # PPO starts with less action noise (std 0.37): the bodies fall easily.
        network=dataclasses.replace(NETWORKS[network], squash=algorithm == "sac",
                                    log_std_init=-0.5 if algorithm == "sac" else -1.0),
        ppo=PPOConfig(rollout_length=32, epochs=4, minibatches=8),
        sac=SACConfig(),
        run=RunConfig(name=preset_name(suite, algorithm, network), total_steps=TOTAL_STEPS[suite, algorithm],
                      **RUN_INTERVALS[algorithm]),
    )
