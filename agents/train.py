"""Train PPO or SAC on a suite of bodies: the thin script around `equirl train`.

    python agents/train.py --config configs/train/hopper_ppo_set.yaml
    python agents/train.py --config configs/train/hopper_ppo_set.yaml --set ppo.learning_rate=1e-3 --steps 200000
    python agents/train.py --config configs/train/hopper_ppo_set.yaml --resume

Everything happens in `equirl.agents.train.train`: the compiled PPO/SAC
iteration (equirl/agents/ppo.py, equirl/agents/sac.py), logs in
runs/<name>/ (metrics.csv, TensorBoard events) and checkpoints.
"""

import argparse
import sys

from equirl.agents.train import command_line_config, train
from equirl.cli import add_train_arguments
from equirl.errors import EquirlError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(parser)
    args = parser.parse_args()
    if args.config is None:
        parser.error("--config is required")
    try:
        config = command_line_config(args.config, args.set, args.out, args.steps)
        result = train(config, resume=args.resume)
    except EquirlError as err:
        print(f"train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # a checkpoint of the last finished iteration was saved
    print(f"done: {int(result.state.env_steps):,} environment steps in {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
