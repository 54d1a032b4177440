"""`equirl wm collect | train | eval`: the world-model commands (wired into equirl/cli.py).

equirl wm collect --config configs/wm/collect_random.yaml --out runs/wm/data/hw
equirl wm train --config configs/wm/fernn.yaml --set data.path=runs/wm/data/hw
equirl wm eval --run runs/wm/fernn --flows yaw:0.785 yaw:0.1 velocity:0.02
"""

from __future__ import annotations

import dataclasses

from equirl.errors import ConfigError, EquirlError


def add_wm_parser(sub) -> None:
    wm = sub.add_parser("wm", help="world models: collect trajectories, train, evaluate")
    wsub = wm.add_subparsers(dest="wm_command", required=True)

    collect = wsub.add_parser("collect", help="record trajectories of random or trained policies to a dataset")
    collect.add_argument("--config", help="a collection config (YAML), e.g. configs/wm/collect_random.yaml")
    collect.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value (repeatable)")
    collect.add_argument("--out", help="dataset folder (collect.out)")
    collect.add_argument("--bodies", nargs="+", help="body names or suites")
    collect.add_argument("--envs", type=int, help="environments stepped together")
    collect.add_argument("--steps", type=int, help="control steps per environment")
    collect.add_argument("--policy", help="'random' or a training run directory (holds checkpoints/)")
    collect.add_argument("--seed", type=int)
    collect.set_defaults(run=_collect)

    train = wsub.add_parser("train", help="train a world model from a YAML config (configs/wm/*.yaml)")
    train.add_argument("--config", help="a world-model training config (YAML)")
    train.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.kind=gru (repeatable)",
    )
    train.add_argument("--data", help="dataset folder (data.path)")
    train.add_argument("--out", help="run directory (default runs/wm/<run.name>)")
    train.add_argument("--steps", type=int, help="optimiser steps (optim.steps)")
    train.add_argument("--resume", action="store_true", help="go on from the run's newest checkpoint")
    train.set_defaults(run=_train)

    ev = wsub.add_parser("eval", help="k-step errors, flow generalisation and equivariance of a trained model")
    ev.add_argument("--run", required=True, dest="run_dir", help="world-model run directory")
    ev.add_argument("--data", help="dataset folder (default: the run's data.path); its test split is used")
    ev.add_argument("--ks", default="1,5,10,25,50", help="open-loop horizons (default 1,5,10,25,50)")
    ev.add_argument(
        "--flows",
        nargs="*",
        default=["yaw:0.785", "yaw:0.1", "velocity:0.02"],
        help="observer flows to test, yaw:RATE (rad/step) or velocity:SPEED (m/step along x)",
    )
    ev.add_argument("--windows", type=int, default=64, help="test windows (default 64)")
    ev.add_argument("--out", help="output folder (default RUN/eval)")
    ev.set_defaults(run=_eval)


def _collect(args) -> None:
    from equirl.config_io import apply_overrides, load_yaml
    from equirl.worldmodels.data import CollectConfig, collect

    config = load_yaml(CollectConfig, args.config) if args.config else CollectConfig()
    if args.set:
        config = apply_overrides(config, args.set)
    fields = dict(
        out=args.out,
        bodies=args.bodies and tuple(args.bodies),
        num_envs=args.envs,
        steps=args.steps,
        policy=args.policy,
        seed=args.seed,
    )
    try:
        config = dataclasses.replace(config, **{k: v for k, v in fields.items() if v is not None})
    except TypeError as err:
        raise ConfigError(f"wm collect: {err}") from None
    out = collect(config)
    print(f"wrote a dataset of {config.steps} steps x {config.num_envs} environments to {out}")


def _train(args) -> None:
    from pathlib import Path

    from equirl.worldmodels.config import WMTrainConfig, load_wm_config
    from equirl.worldmodels.train import CONFIG_YAML, train_world_model

    path = args.config
    if path is None:
        if not (args.resume and args.out):
            raise EquirlError("wm train: --config is required (or --resume with --out RUN_DIR)")
        path = Path(args.out) / CONFIG_YAML
    config = load_wm_config(path, args.set or ())
    try:
        if args.data is not None:
            config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=args.data))
        if args.out is not None:
            config = dataclasses.replace(config, run=dataclasses.replace(config.run, out_dir=args.out))
        if args.steps is not None:
            config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, steps=args.steps))
    except EquirlError as err:
        raise ConfigError(f"{path}: {err}") from None
    assert isinstance(config, WMTrainConfig)
    result = train_world_model(config, resume=args.resume)
    last = result.history[-1] if result.history else {}
    summary = f"test error {last['test/total']:.4g} (z-scored MSE), " if "test/total" in last else ""
    print(f"{summary}{config.optim.steps} steps in {result.wall_seconds:.0f} s; run in {result.run_dir}")


def parse_flow(text: str):
    """'yaw:0.3' or 'velocity:0.02' -> (name, ObserverFlow)."""
    from equirl.worldmodels.flows import ObserverFlow

    kind, sep, value = text.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = None
    if not sep or number is None or kind not in ("yaw", "velocity"):
        raise ConfigError(f"--flows {text!r}: expected yaw:RATE or velocity:SPEED, e.g. yaw:0.1")
    flow = ObserverFlow.make(number) if kind == "yaw" else ObserverFlow.make(0.0, (number, 0.0))
    return f"{kind}_{value}", flow


def _eval(args) -> None:
    from equirl.worldmodels.evaluate import evaluate_run, format_report

    try:
        ks = tuple(int(k) for k in args.ks.split(",") if k.strip())
    except ValueError:
        raise ConfigError(f"--ks {args.ks!r}: expected integers like 1,5,10") from None
    if not ks or min(ks) < 1:
        raise ConfigError(f"--ks {args.ks!r}: horizons must be integers >= 1")
    flows = dict(parse_flow(f) for f in args.flows)
    report, paths = evaluate_run(
        args.run_dir, data_path=args.data, ks=ks, flows=flows, windows=args.windows, out=args.out
    )
    print(format_report(report))
    print(f"wrote {', '.join(str(p) for p in paths)}")
