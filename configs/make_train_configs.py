"""Write configs/train/<suite>_<algorithm>_<network>.yaml, every field spelled out.

    python configs/make_train_configs.py            # (re)write them
    python configs/make_train_configs.py --check    # fail if any is missing or stale

Sizes suit a 2-core CPU; scale num_envs and widths up on a GPU. One script
keeps the 24 files consistent: edit the tables here, not the files.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

from equirl.agents.config import PPOConfig, RunConfig, SACConfig, TrainConfig
from equirl.config_io import to_dict
from equirl.envs.config import EnvConfig
from equirl.nn.config import NetworkConfig

OUT = Path(__file__).resolve().parent / "train"

# suite: (task, max_limbs = most limbs of any of its bodies, see `equirl bodies`)
SUITES = {
    "hopper": ("v1", 5),  # 3 bodies
    "walker": ("v1", 7),  # 6 bodies
    "CWHH": ("v1", 14),  # 23 bodies (cheetahs up to 14 limbs)
}

# Environments per suite and algorithm: where possible a multiple of the body
# count, so every body gets the same share of the batch.
NUM_ENVS = {
    ("hopper", "ppo"): 64,  # 22/21/21: close enough, and a power of two batch
    ("walker", "ppo"): 96,
    ("CWHH", "ppo"): 92,
    ("hopper", "sac"): 12,
    ("walker", "sac"): 12,
    ("CWHH", "sac"): 46,
}

TOTAL_STEPS = {
    ("hopper", "ppo"): 2_000_000,
    ("walker", "ppo"): 5_000_000,
    ("CWHH", "ppo"): 10_000_000,
    ("hopper", "sac"): 1_000_000,
    ("walker", "sac"): 2_000_000,
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


def make(suite: str, algorithm: str, network: str) -> TrainConfig:
    task, max_limbs = SUITES[suite]
    num_envs = NUM_ENVS[suite, algorithm]
    ppo = PPOConfig(rollout_length=32, epochs=4, minibatches=8)
    if algorithm == "ppo" and (num_envs * ppo.rollout_length) % ppo.minibatches:
        raise ValueError(f"{suite}: minibatches do not divide the batch")
    return TrainConfig(
        algorithm=algorithm,
        env=EnvConfig(bodies=(suite,), num_envs=num_envs, task=task, max_limbs=max_limbs),
        # PPO starts with less action noise (std 0.37): the bodies fall easily.
        network=dataclasses.replace(NETWORKS[network], squash=algorithm == "sac",
                                    log_std_init=-0.5 if algorithm == "sac" else -1.0),
        ppo=ppo,
        sac=SACConfig(),
        run=RunConfig(name=f"{suite}_{algorithm}_{network}", total_steps=TOTAL_STEPS[suite, algorithm],
                      **RUN_INTERVALS[algorithm]),
    )


class _Dumper(yaml.SafeDumper):
    """Block mappings, but short lists on one line: `bodies: [hopper]`."""


_Dumper.add_representer(list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data,
                                                                            flow_style=True))


def render(suite: str, algorithm: str, network: str) -> str:
    config = make(suite, algorithm, network)
    header = (
        f"# {suite} suite, {algorithm.upper()}, {network} networks; written by configs/make_train_configs.py.\n"
        f"#   equirl train --config configs/train/{config.run.name}.yaml [--set key=value ...] [--resume]\n"
        f"# Only the `{algorithm}` block is used; the other algorithm's block is kept so a\n"
        f"# run can switch with --set algorithm=... and still show every value.\n"
    )
    return header + yaml.dump(to_dict(config), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that are missing or stale")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    stale = []
    for suite in SUITES:
        for algorithm in ("ppo", "sac"):
            for network in NETWORKS:
                path = OUT / f"{suite}_{algorithm}_{network}.yaml"
                text = render(suite, algorithm, network)
                if path.exists() and path.read_text() == text:
                    continue
                stale.append(path)
                if not args.check:
                    path.write_text(text)
    for path in stale:
        print(("stale: " if args.check else "wrote ") + str(path))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
