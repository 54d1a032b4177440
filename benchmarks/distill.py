"""Distil teacher runs into one SET student and measure both, body by body.

    python benchmarks/distill.py --family hopper --teachers runs/offpolicy/hopper_td3_... --steps 30000
    python benchmarks/distill.py --family hopper --teachers RUN --steps 30000 --ship hopper_set_distilled
    python benchmarks/distill.py --family hopper --teachers lqr --tag lqr --ship hopper_set_balance
    python benchmarks/distill.py --table-only

Trains `equirl distill`'s config (resuming a stopped run) in runs/distill/<family>_<student>[_<tag>],
then evaluates, deterministically on the published task (--episodes per body): every teacher
on its own training bodies, and the student on the family's training bodies and its held-out
bodies (<family>_zero_shot where the benchmark has them). Rows go to
results/distill/summary.csv

    family, student, teachers, body, split, return_mean, return_std, episode_length, wall_seconds

(split: teacher / train / held_out; wall_seconds: the student's training wall clock) and
results/distill/table.md beside SGRL's published zero-shot SET returns. --ship NAME exports
the student as a pretrained controller (equirl/evaluation/controllers/NAME) whose card holds
exactly these figures.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
from pathlib import Path

from equirl.envs.lqr import NAME as LQR

OUT = Path("results/distill")
COLUMNS = ("family", "student", "teachers", "body", "split", "return_mean", "return_std", "episode_length")
COLUMNS += ("wall_seconds",)
# 3D-SGRL's SET, zero-shot after training on the family (SPEC.md).
PUBLISHED_ZERO_SHOT = {
    "walker_3_left_knee_right_knee": 276.2,
    "walker_6_right_foot": 431.3,
    "humanoid_7_left_leg": 244.8,
    "humanoid_8_right_knee": 299.6,
    "cheetah_11_leftbkneen_rightffoot": 4643.9,
    "cheetah_12_tail_leftffoot": 916.0,
}


def train_student(args) -> Path:
    from equirl.agents.distill import distill_config
    from equirl.agents.train import train
    from equirl.runs.checkpoints import has_checkpoints

    run_dir = Path(args.runs) / f"{args.family}_{args.student}{'_' + args.tag if args.tag else ''}"
    config = distill_config(
        args.teachers,
        bodies=[args.family],
        student=args.student,
        steps=args.steps,
        name=run_dir.name,
        out=str(run_dir),
        sets=args.set,
    )
    train(config, resume=has_checkpoints(run_dir))
    return run_dir


def evaluate_rows(args, run_dir: Path) -> list[dict]:
    from equirl.evaluation import evaluate, load_policy_for_eval
    from equirl.morphology import sgrl
    from equirl.runs.checkpoints import METRICS_CSV

    with open(run_dir / METRICS_CSV, newline="") as handle:
        rows = list(csv.DictReader(handle))
    wall = float(rows[-1]["wall_seconds"]) if rows else float("nan")
    teachers = ";".join(Path(t).name for t in args.teachers)
    out = []

    def add(results, split):
        for r in results:
            if r.ok:
                out.append(
                    dict(
                        family=args.family,
                        student=args.student,
                        teachers=teachers,
                        body=r.body,
                        split=split,
                        return_mean=round(r.return_mean, 1),
                        return_std=round(r.return_std, 1),
                        episode_length=round(r.length_mean, 1),
                        wall_seconds=round(wall),
                    )
                )

    for teacher in args.teachers:
        policy = lqr_policy(args.family) if teacher == LQR else load_policy_for_eval(teacher)
        bodies = [b for b in sgrl.SUITES[args.family] if b in _bodies_of(policy)]
        add(evaluate(policy, bodies, episodes=args.episodes), "teacher")
    student = load_policy_for_eval(run_dir)
    add(evaluate(student, list(sgrl.SUITES[args.family]), episodes=args.episodes), "train")
    held_out = sgrl.SUITES.get(f"{args.family}_zero_shot", ())
    if held_out:
        add(evaluate(student, list(held_out), episodes=args.episodes), "held_out")
    return out


def lqr_policy(family: str):
    """The lqr teacher as an evaluable policy: zero actions on top of the LQR base controller."""
    import jax.numpy as jnp

    from equirl.agents.config import TrainConfig
    from equirl.envs.bodies import largest_limb_count
    from equirl.envs.config import EnvConfig
    from equirl.evaluation import Policy
    from equirl.presets import NETWORKS

    env = EnvConfig(bodies=(family,), max_limbs=largest_limb_count((family,)), base_controller=LQR)
    config = TrainConfig(env=env, network=NETWORKS["set"])
    return Policy(config=config, state=(), act=lambda state, obs: jnp.zeros(obs.action_mask.shape))


def _bodies_of(policy) -> set[str]:
    from equirl.envs.bodies import body_names

    return set(body_names(policy.config.env.bodies, policy.max_limbs))


def write(rows: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "summary.csv"
    old = list(csv.DictReader(open(path, newline=""))) if path.exists() else []
    keys = {(r["family"], r["student"], r["teachers"]) for r in rows}
    kept = [r for r in old if (r["family"], r["student"], r["teachers"]) not in keys]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        writer.writerows(kept + rows)
    # When and where each group of rows was measured: --table-only and later groups must not restamp them.
    from equirl.machine import describe as machine

    stamps = _stamps()
    stamp = {"date": str(datetime.date.today()), "machine": machine()}
    stamps.update({"/".join(key): stamp for key in keys})
    (OUT / "measured.json").write_text(json.dumps(stamps, indent=1) + "\n")
    table()


def _stamps() -> dict:
    """family/student/teachers -> {date, machine}."""
    path = OUT / "measured.json"
    return json.loads(path.read_text()) if path.exists() else {}


def table() -> None:
    stamps = _stamps()
    rows = list(csv.DictReader(open(OUT / "summary.csv", newline="")))
    lines = [
        "Distillation into one student (benchmarks/distill.py). Deterministic evaluation on the published task; "
        "teacher rows: each teacher on its own bodies. Measured:",
        "",
        *(f"- {key}: {s['date']}, {s['machine']}" for key, s in stamps.items()),
        "",
        "| family | student | teachers | body | split | return | episode length | student wall clock | SGRL SET |",
        "|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        published = PUBLISHED_ZERO_SHOT.get(r["body"], "")
        lines.append(
            f"| {r['family']} | {r['student']} | {r['teachers']} | {r['body']} | {r['split']} | "
            f"{float(r['return_mean']):.0f} ± {float(r['return_std']):.0f} | {float(r['episode_length']):.0f} | "
            f"{float(r['wall_seconds']) / 60:.0f} min | {published} |"
        )
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def ship(args, run_dir: Path, rows: list[dict]) -> None:
    from equirl.evaluation import pretrained
    from equirl.machine import describe as machine

    measured = {
        r["body"]: {"split": r["split"], "return": r["return_mean"], "episode_length": r["episode_length"]}
        for r in rows
        if r["split"] != "teacher"
    }
    teacher = {r["body"]: r["return_mean"] for r in rows if r["split"] == "teacher"}
    train = [r for r in rows if r["split"] == "train"]
    mean = sum(r["return_mean"] for r in train) / max(len(train), 1)
    card = {
        "summary": f"mean return {mean:.0f} on the {args.family} training bodies (teachers: "
        f"{sum(teacher.values()) / max(len(teacher), 1):.0f})",
        "trained_on": [r["body"] for r in train],
        "teachers": [_teacher_line(t) for t in args.teachers],
        "budget": f"{args.steps} environment steps of DAgger, {train[0]['wall_seconds'] if train else '?'} s "
        f"on {machine()}",
        "measured": measured,
        "teacher_returns": teacher,
        "evaluation": f"deterministic, published task, {args.episodes} episodes per body, {datetime.date.today()}",
    }
    path = pretrained.export(run_dir, args.ship, card)
    print(f"shipped {path}: {json.dumps(card['summary'])}")


def _teacher_line(run_dir: str) -> str:
    """What a teacher was: algorithm, network, bodies, budget and its training aid, from its stored config."""
    from equirl.agents.saved_runs import run_config

    if run_dir == LQR:
        return "lqr: the scripted standing balance controller (equirl.envs.lqr), one LQR gain per body"
    c = run_config(run_dir)
    aid = f", training_tilt_limit {c.env.training_tilt_limit} rad" if c.env.training_tilt_limit else ""
    return (
        f"{Path(run_dir).name}: {c.algorithm} {c.network.kind}, {'+'.join(c.env.bodies)}, "
        f"{c.run.total_steps:,} environment steps{aid}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="hopper")
    parser.add_argument("--teachers", nargs="+", default=[])
    parser.add_argument("--student", default="set")
    parser.add_argument("--tag", default="", help="run directory suffix")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--runs", default="runs/distill")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ship", help="export the student as this pretrained controller")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.table_only:
        table()
        return
    if not args.teachers:
        parser.error("--teachers is required")
    run_dir = train_student(args)
    rows = evaluate_rows(args, run_dir)
    write(rows)
    if args.ship:
        ship(args, run_dir, rows)


if __name__ == "__main__":
    main()
