"""The `equirl` command line.

    equirl demo                 step a mixed batch of bodies with random actions
    equirl bodies               list the 3D-SGRL bodies and suites
    equirl inspect FILE.xml     show the limb graph the loader derives from any MJCF file
    equirl write-envs           (re)write envs/ with the body builder
    equirl train --config F     train PPO or SAC (configs/train/*.yaml); --resume goes on
    equirl eval --run DIR       evaluate a checkpoint (deterministic) on any bodies, zero-shot
    equirl render --run DIR     an MP4 (or GIF) of a policy on one body, rendered headless
    equirl curve RUN            a run's learning curve in step windows (return, episode length, critic)
    equirl quickstart           train briefly on the hoppers, evaluate zero-shot, render a video
    equirl wm collect|train|eval  world models: record trajectories, train, evaluate (configs/wm/)

Errors a user can cause are printed as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from equirl.errors import EquirlError


def _bodies(_args) -> None:
    from equirl.morphology import sgrl

    print(f"{'body':36s} {'family':9s} {'limbs':>5s}  split")
    for family, names in sgrl.FAMILIES.items():
        for name in names:
            split = "zero-shot" if name in sgrl.ZERO_SHOT.get(family, ()) else "train"
            print(f"{name:36s} {family:9s} {len(sgrl.sgrl_body(name).limb_names):5d}  {split}")
    print("\nsuites: " + ", ".join(f"{k} ({len(v)})" for k, v in sgrl.SUITES.items()))


def _inspect(args) -> None:
    from equirl.morphology.limb_graph import LIMB_TYPES
    from equirl.morphology.loader import load_mjcf

    morph = load_mjcf(args.file, max_limbs=args.max_limbs)
    graph = morph.graph
    print(
        f"{morph.source}: {graph.num_limbs} limbs, {int(graph.action_mask.sum())} driven hinges, "
        f"timestep {morph.model.opt.timestep} s"
    )
    for i, name in enumerate(graph.limb_names):
        parent = graph.limb_names[graph.parent[i]] if graph.parent[i] >= 0 else "-"
        kind = LIMB_TYPES[graph.limb_type[i]] if graph.limb_type[i] >= 0 else "other"
        hinges = "".join(
            "M" if m else ("h" if j >= 0 else ".") for m, j in zip(graph.action_mask[i], graph.hinge_joint[i])
        )
        print(f"  {i:2d} {name:24s} parent={parent:20s} type={kind:6s} hinges={hinges}")
    print("hinges: M driven, h passive (no motor or gear 0), . none")


def _write_envs(args) -> None:
    from equirl.morphology import write_envs

    code = write_envs.main(["--out", args.out] + (["--check"] if args.check else []))
    if code:
        raise SystemExit(code)


def _demo(args) -> None:
    """Random actions on a mixed batch: shows the suite and measures its speed."""
    import jax
    import numpy as np

    from equirl.config_io import load_yaml
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig
    from equirl.envs.rollout import episode_ends, unroll

    DEMO_CONFIG = EnvConfig(bodies=("CWHH",), num_envs=46)

    config = load_yaml(EnvConfig, args.config) if args.config else DEMO_CONFIG
    overrides = dict(
        bodies=args.bodies and tuple(args.bodies), num_envs=args.envs, task=args.task, backend=args.backend
    )
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    env = BatchedEnv(config)
    n_bodies = len(env.morphologies)
    print(
        f"{n_bodies} bodies, {config.num_envs} environments, task {config.task}, "
        f"{env.backend_name} backend, padded to {env.num_limbs} limbs"
    )

    def random_policy(obs, key, t):
        return jax.random.uniform(key, (env.num_envs,) + env.action_shape, minval=-1.0, maxval=1.0), ()

    def rollout(state, key):
        record = lambda step: tuple(episode_ends(step.after)[:3])  # noqa: E731  done, return, length
        state, key, records = unroll(env, state, random_policy, key, args.steps, record)
        return (state, key), records

    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(env.reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(1)).compile()
    print(f"compiled in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    (_, _), (done, returns, lengths) = jax.block_until_ready(
        compiled(env.reset(jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
    )
    seconds = time.perf_counter() - start
    done, returns, lengths = np.asarray(done), np.asarray(returns), np.asarray(lengths)
    print(
        f"{args.steps * env.num_envs:,} environment steps in {seconds:.1f} s "
        f"({args.steps * env.num_envs / seconds:,.0f} steps/s, "
        f"{args.steps * env.num_envs * config.frame_skip / seconds:,.0f} physics steps/s)"
    )
    print(f"\n{'body':36s} {'limbs':>5s} {'episodes':>8s} {'mean return':>12s} {'mean length':>12s}")
    for b, morph in enumerate(env.morphologies):
        cols = env.body_of_env == b
        ended = done[:, cols]
        ret, length = returns[:, cols][ended], lengths[:, cols][ended]
        mean_ret = f"{ret.mean():12.1f}" if ret.size else f"{'-':>12s}"
        mean_len = f"{length.mean():12.1f}" if length.size else f"{'-':>12s}"
        print(f"{morph.name:36s} {morph.num_limbs:5d} {int(ended.sum()):8d} {mean_ret} {mean_len}")
    env.close()


def _train(args) -> None:
    """Train from a YAML config with overrides; --resume goes on from the run's newest checkpoint."""
    from pathlib import Path

    from equirl.agents.distributed import initialize_from_env

    initialize_from_env()  # a multi-host launch: before anything (an import included) touches a device
    from equirl.agents.train import command_line_config
    from equirl.runs.checkpoints import CONFIG_YAML

    config_path = args.config
    if config_path is None:
        # Resuming a run needs no config file: the run directory keeps its own.
        if not (args.resume and args.out):
            raise EquirlError("train: --config is required (or --resume with --out RUN_DIR)")
        config_path = Path(args.out) / CONFIG_YAML
    _run_training(command_line_config(config_path, args.set, args.out, args.steps), args.resume, "run")


def _run_training(config, resume: bool, what: str) -> None:
    """Train (or resume) `config` through the driver and print one summary line."""
    from equirl.agents.train import train

    try:
        result = train(config, resume=resume)
    except KeyboardInterrupt:
        raise SystemExit(130) from None  # train has saved a checkpoint and said so
    last = result.history[-1] if result.history else {}
    summary = f"mean return {last['return/mean']:.1f}, " if "return/mean" in last else ""
    print(f"{summary}{int(result.state.env_steps):,} environment steps; {what} in {result.run_dir}")


def _distill(args) -> None:
    """DAgger from teacher runs into one student (algorithm "distill" through the training driver)."""
    from pathlib import Path

    from equirl.agents.distill import distill_config
    from equirl.config_io import load_yaml

    out = args.out or f"runs/{args.name}"
    if args.resume:
        from equirl.agents.config import TrainConfig
        from equirl.runs.checkpoints import CONFIG_YAML

        config = load_yaml(TrainConfig, Path(out) / CONFIG_YAML)
    else:
        if not args.teachers:
            raise EquirlError("distill: --teachers RUN_DIR [RUN_DIR ...] (or lqr) is required (or --resume)")
        config = distill_config(
            args.teachers,
            bodies=args.bodies,
            student=args.student,
            steps=args.steps,
            num_envs=args.envs,
            name=args.name,
            out=out,
            sets=args.set,
        )
    _run_training(config, args.resume, "student")


def _seeds(text: str) -> tuple[int, ...]:
    """ "0,1,2" or "0-4" -> seeds."""
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            return tuple(range(lo, hi + 1))
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise EquirlError(f"--seeds {text!r}: expected integers like 0,1,2 or a range like 0-4") from None


def _eval(args) -> None:
    """Evaluate a checkpoint on bodies; print the table, write CSV and JSON."""
    from equirl.evaluation.evaluate import evaluate, format_table, stderr_log, write_outputs

    policy = _policy(args)
    out = args.out or (f"runs/pretrained_{args.pretrained}/eval" if args.pretrained else None)
    seeds = _seeds(args.seeds)
    print(
        f"{policy.run_dir} at {policy.step:,} environment steps ({policy.config.network.kind} network, "
        f"trained on {', '.join(policy.config.env.bodies)}); {args.episodes} episodes per body and seed, "
        f"seeds {', '.join(map(str, seeds))}",
        flush=True,
    )
    results = evaluate(
        policy,
        args.bodies,
        episodes=args.episodes,
        seeds=seeds,
        batch_size=args.batch_size,
        episode_length=args.episode_length,
        task=args.task,
        backend=args.backend,
        training_aids=args.training_aids,
        log=None if args.quiet else stderr_log,
    )
    print(format_table(results))
    csv_path, json_path = write_outputs(
        results,
        policy,
        args.bodies,
        out,
        meta={"episodes": args.episodes, "seeds": list(seeds), "training_aids": args.training_aids},
    )
    print(f"wrote {csv_path} and {json_path}")
    if not any(r.ok for r in results):
        raise EquirlError(f"eval: no body could be evaluated ({results[0].body}: {results[0].error})")


def _policy(args):
    """The policy of --run (a checkpoint) or of --pretrained (a shipped controller)."""
    if args.pretrained:
        from equirl.evaluation import pretrained

        return pretrained.load(args.pretrained)
    from equirl.evaluation.evaluate import load_policy_for_eval

    return load_policy_for_eval(args.run_dir, args.step)


def _pretrained(args) -> None:
    from equirl.evaluation import pretrained

    print(pretrained.describe())


def _render(args) -> None:
    from equirl.evaluation.render import render_video

    result = render_video(
        _policy(args),
        args.body,
        args.out,
        seed=args.seed,
        step=args.step,
        episode_length=args.episode_length,
        width=args.width,
        height=args.height,
        gif=args.gif,
        out_dir=args.dir,
        distance=args.distance,
        task=args.task,
        max_fps=args.max_fps,
    )
    extra = f" and {result.gif}" if result.gif else ""
    print(
        f"wrote {result.path}{extra}: return {result.episode_return:.1f}, {result.length} steps, "
        f"{result.frames} frames at {result.fps:.1f} fps"
    )


def _quickstart(args) -> None:
    from equirl.evaluation.quickstart import quickstart

    quickstart(args.out, args.steps)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `equirl train` (shared with agents/train.py)."""
    parser.add_argument("--config", help="a training config (YAML), e.g. configs/train/hopper_ppo_set.yaml")
    parser.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set ppo.learning_rate=1e-3 (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="go on from the newest checkpoint of the run directory")
    parser.add_argument("--out", help="run directory (default: runs/<run.name>)")
    parser.add_argument("--steps", type=int, help="total environment steps (run.total_steps)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="equirl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="step a mixed batch of bodies with random actions")
    demo.add_argument(
        "--config", help="an environment config (YAML), e.g. configs/env/hopper_v1.yaml; default: CWHH, 46 envs"
    )
    demo.add_argument("--bodies", nargs="+", help="body names, suites, MJCF paths or random:COUNT:SEED")
    demo.add_argument("--envs", type=int, help="number of environments")
    demo.add_argument("--steps", type=int, default=250, help="control steps")
    demo.add_argument("--task", choices=["v1", "v2"])
    demo.add_argument("--backend", choices=["auto", "native", "mjx"])
    demo.set_defaults(run=_demo)

    bodies = sub.add_parser("bodies", help="list the 3D-SGRL bodies and suites")
    bodies.set_defaults(run=_bodies)

    inspect = sub.add_parser("inspect", help="show the limb graph of an MJCF file")
    inspect.add_argument("file")
    inspect.add_argument("--max-limbs", type=int, default=None)
    inspect.set_defaults(run=_inspect)

    write = sub.add_parser("write-envs", help="write the benchmark bodies as MJCF files")
    write.add_argument("--out", default="envs")
    write.add_argument("--check", action="store_true", help="only report files that are missing or stale")
    write.set_defaults(run=_write_envs)

    train = sub.add_parser("train", help="train any registered algorithm (ppo, sac, crossq, td3, distill) from YAML")
    add_train_arguments(train)
    train.set_defaults(run=_train)

    distill = sub.add_parser("distill", help="distil trained teacher runs into one student network (DAgger)")
    distill.add_argument(
        "--teachers",
        nargs="+",
        help="teacher run directories (each labels its own bodies), or lqr: the scripted balance controller",
    )
    distill.add_argument("--bodies", nargs="+", help="the student's bodies (default: all the teachers')")
    distill.add_argument("--student", default="set", help="student network kind (default set)")
    distill.add_argument("--steps", type=int, default=100_000, help="environment steps (default 100000)")
    distill.add_argument("--envs", type=int, help="environments (default: one per body)")
    distill.add_argument("--name", default="distill", help="run name (default distill)")
    distill.add_argument("--out", help="run directory (default runs/NAME)")
    distill.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    distill.add_argument("--resume", action="store_true", help="go on from the run's newest checkpoint")
    distill.set_defaults(run=_distill)

    ev = sub.add_parser("eval", help="evaluate a checkpoint (deterministic policy) on any bodies")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_dir", help="run directory (holds checkpoints/)")
    source.add_argument("--pretrained", help="a shipped controller (see `equirl pretrained`)")
    ev.add_argument(
        "--bodies",
        nargs="+",
        default=["zero_shot"],
        help="body names, suites (zero_shot, walker_zero_shot, ...), MJCF paths or random:COUNT:SEED "
        "(default: zero_shot)",
    )
    ev.add_argument("--episodes", type=int, default=10, help="episodes per body and seed (default 10)")
    ev.add_argument("--seeds", default="0", help="seeds, e.g. 0,1,2 or 0-4 (default 0)")
    ev.add_argument("--batch-size", type=int, default=64, help="episodes run at once per body (default 64)")
    ev.add_argument("--step", type=int, help="checkpoint (environment steps; default: the newest)")
    ev.add_argument("--episode-length", type=int, help="override the training episode length")
    ev.add_argument("--task", choices=["v1", "v2"], help="override the training task")
    ev.add_argument("--backend", choices=["auto", "native", "mjx"])
    ev.add_argument(
        "--training-aids",
        action="store_true",
        help=(
            "keep the run's training_* aids (its own training task at the checkpoint's step: "
            "a fading damping at that step's strength); default: the published task"
        ),
    )
    ev.add_argument("--out", help="output folder for <bodies>.csv/.json (default RUN/eval)")
    ev.add_argument("--quiet", action="store_true", help="no per-body progress lines")
    ev.set_defaults(run=_eval)

    render = sub.add_parser("render", help="render a policy on one body to MP4 (optionally GIF), headless")
    source = render.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", dest="run_dir", help="run directory (holds checkpoints/)")
    source.add_argument("--pretrained", help="a shipped controller (see `equirl pretrained`)")
    render.add_argument("--body", required=True, help="a body name, MJCF path or random:1:SEED")
    render.add_argument("--out", help="MP4 path (default: DIR/<run>_<body>_seed<S>_return<R>.mp4)")
    render.add_argument("--dir", default="videos", help="folder for the default file name (default videos/)")
    render.add_argument("--seed", type=int, default=0)
    render.add_argument("--step", type=int, help="checkpoint (environment steps; default: the newest)")
    render.add_argument("--episode-length", type=int, help="at most this many steps (default: the training value)")
    render.add_argument("--task", choices=["v1", "v2"], help="override the training task")
    render.add_argument("--width", type=int, default=640)
    render.add_argument("--height", type=int, default=480)
    render.add_argument("--distance", type=float, default=4.0, help="camera distance from the torso (m)")
    render.add_argument("--gif", action="store_true", help="also write a GIF next to the MP4")
    render.add_argument(
        "--max-fps", type=float, default=30.0, help="draw every k-th control step to stay at or under this (default 30)"
    )
    render.set_defaults(run=_render)

    shipped = sub.add_parser("pretrained", help="list the controllers shipped with equirl and their measured returns")
    shipped.set_defaults(run=_pretrained)

    quick = sub.add_parser("quickstart", help="train SET-PPO briefly on the hoppers, evaluate zero-shot, render")
    quick.add_argument("--out", default="runs/quickstart", help="run directory (default runs/quickstart)")
    quick.add_argument("--steps", type=int, default=150_000, help="training budget (default 150000)")
    quick.set_defaults(run=_quickstart)

    from equirl.runs.curve import add_curve_parser
    from equirl.worldmodels.cli import add_wm_parser

    add_curve_parser(sub)
    add_wm_parser(sub)

    args = parser.parse_args(argv)
    try:
        args.run(args)
    except EquirlError as err:
        print(f"equirl: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
