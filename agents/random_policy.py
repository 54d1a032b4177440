"""Random actions on a batch of bodies: the environment suite and its speed.

    python agents/random_policy.py --config configs/env/hopper_v1.yaml --steps 200

A thin wrapper over `equirl demo`; agents/train.py wraps `equirl train` the same way.
"""

import sys

from equirl.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
