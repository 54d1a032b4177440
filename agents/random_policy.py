"""Random actions on a batch of bodies: the environment suite and its speed.

    python agents/random_policy.py --config configs/env/hopper_v1.yaml --steps 200

A thin wrapper over `equirl demo`; training agents (PPO, SAC) join this folder
with issue 4.
"""

import sys

from equirl.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
