"""Train any registered algorithm (ppo, sac, crossq, td3, ...): a thin wrapper over `equirl train`.

    python agents/train.py --config configs/train/hopper_ppo_set.yaml
    python agents/train.py --config configs/train/hopper_ppo_set.yaml --set ppo.learning_rate=1e-3 --steps 200000
    python agents/train.py --config configs/train/hopper_ppo_set.yaml --resume

Everything happens in `equirl.agents.train.train` (the driver) and the algorithm's
module (`equirl.agents.registry`); runs/<name>/ gets metrics.csv, TensorBoard events
and checkpoints.
"""

import sys

from equirl.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
