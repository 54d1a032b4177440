"""The quickstart job: train briefly, evaluate zero-shot, render a video.

    python3 -m equirl quickstart

1. trains SET-PPO on the hopper suite (the preset behind
   configs/train/hopper_ppo_set.yaml, equirl.presets, with a small budget);
2. evaluates the policy deterministically on the bodies it trained on and,
   zero-shot, on walkers it never saw (the walker zero-shot split; the SET
   network takes any number of limbs);
3. renders one video of a zero-shot walker;
4. evaluates the shipped pretrained controller whose episodes last longest
   (no training) and renders it, and evaluates a shipped controller zero-shot
   on bodies it never saw;
then prints where the checkpoint, the tables and the videos are.

Running it again goes on from the run's checkpoint (nothing is retrained
once the budget is reached).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

RUN_DIR = "runs/quickstart"
TOTAL_STEPS = 150_000
TRAIN_BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
ZERO_SHOT_BODIES = ("walker_zero_shot",)
VIDEO_BODY = "walker_3_left_knee_right_knee"
EPISODES = 8


def quickstart_config(run_dir: str = RUN_DIR, total_steps: int = TOTAL_STEPS):
    """The shipped hopper SET-PPO preset (configs/train/hopper_ppo_set.yaml) with a small budget."""
    from equirl.presets import train_preset

    config = train_preset("hopper", "ppo", "set")
    # One checkpoint is enough to resume; the equivariance probe is left to real runs.
    run = dataclasses.replace(
        config.run,
        name="quickstart",
        total_steps=int(total_steps),
        out_dir=str(run_dir),
        keep_checkpoints=1,
        equivariance_every_steps=0,
        progress=True,
    )
    return dataclasses.replace(config, run=run)


def _say(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def _held_out(card: dict) -> list[str]:
    return [body for body, row in card.get("measured", {}).items() if row.get("split") == "held_out"]


def _longest_lived(card: dict) -> tuple[float, str]:
    """(mean measured episode length on the training bodies, the body it lasts longest on)."""
    rows = {body: row for body, row in card.get("measured", {}).items() if row.get("split") == "train"}
    if not rows:
        return 0.0, card["trained_on"][0]
    body = max(rows, key=lambda b: rows[b]["episode_length"])
    return sum(r["episode_length"] for r in rows.values()) / len(rows), body


def _pretrained(video_dir: str) -> dict | None:
    """Step 4: shipped pretrained controllers, with no training at all. The one whose measured
    episodes last longest is evaluated on its training bodies and rendered on the body it lasts
    longest on; the first one measured on bodies it never saw (if another) is evaluated there."""
    from equirl.evaluation import pretrained
    from equirl.evaluation.evaluate import evaluate, format_table, stderr_log
    from equirl.evaluation.render import render_video

    names = pretrained.names()
    if not names:
        return None
    cards = {n: pretrained.card(n) for n in names}
    name = max(names, key=lambda n: _longest_lived(cards[n])[0])
    unseen_name = name if _held_out(cards[name]) else next((n for n in names if _held_out(cards[n])), None)
    policy, card = pretrained.load(name), cards[name]
    bodies = list(card["trained_on"]) + (_held_out(card) if unseen_name == name else [])
    _say(f"4/4 the shipped pretrained controller {name} (no training): {EPISODES} episodes per body, and a video")
    print(format_table(evaluate(policy, bodies, episodes=EPISODES, seeds=(0,), log=stderr_log)), flush=True)
    if unseen_name not in (None, name):
        unseen = _held_out(cards[unseen_name])
        _say(f"    and {unseen_name}, zero-shot on {', '.join(unseen)} (bodies it never saw)")
        other = pretrained.load(unseen_name)
        print(format_table(evaluate(other, unseen, episodes=EPISODES, seeds=(0,), log=stderr_log)), flush=True)
    video = render_video(policy, _longest_lived(card)[1], seed=0, out_dir=video_dir)
    return {"name": name, "video": video.path, "return": video.episode_return, "length": video.length}


def quickstart(run_dir: str = RUN_DIR, total_steps: int = TOTAL_STEPS, video_dir: str = "videos") -> dict:
    """Run the whole job; returns the paths it wrote and the timings."""
    from equirl.agents.train import train
    from equirl.evaluation.evaluate import evaluate, format_table, load_policy_for_eval, stderr_log, write_outputs
    from equirl.evaluation.render import render_video
    from equirl.runs.checkpoints import CHECKPOINTS

    start = time.perf_counter()
    config = quickstart_config(run_dir, total_steps)
    ckpt_dir = Path(run_dir) / CHECKPOINTS
    resume = ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir())
    _say(
        f"1/4 training SET-PPO on the hopper suite for {total_steps:,} environment steps -> {run_dir}"
        + (" (resuming)" if resume else "")
    )
    result = train(config, resume=resume)
    train_seconds = time.perf_counter() - start
    last = result.history[-1] if result.history else {}
    if "return/mean" in last:
        _say(f"trained in {train_seconds:.0f} s; last training return {last['return/mean']:.1f}")

    _say(
        f"2/4 evaluating ({EPISODES} deterministic episodes per body) on the training bodies and, zero-shot, "
        f"on {', '.join(ZERO_SHOT_BODIES)}"
    )
    policy = load_policy_for_eval(run_dir)
    bodies = TRAIN_BODIES + ZERO_SHOT_BODIES
    results = evaluate(policy, bodies, episodes=EPISODES, seeds=(0,), log=stderr_log)
    print(format_table(results), flush=True)
    csv_path, json_path = write_outputs(results, policy, bodies, None, meta={"episodes": EPISODES, "seeds": [0]})

    _say(f"3/4 rendering {VIDEO_BODY} (never seen in training)")
    video = render_video(policy, VIDEO_BODY, seed=0, out_dir=video_dir)
    shipped = _pretrained(video_dir)
    total = time.perf_counter() - start
    _say(f"done in {total:.0f} s")
    print(f"  checkpoint: {ckpt_dir}/{policy.step}")
    print(f"  table:      {csv_path}  (and {json_path.name})")
    print(f"  video:      {video.path}  (return {video.episode_return:.1f}, {video.length} steps)")
    if shipped:
        print(
            f"  pretrained: {shipped['video']}  ({shipped['name']}: return {shipped['return']:.1f}, "
            f"{shipped['length']} steps)"
        )
    print("next: equirl eval --run " + str(run_dir) + " --bodies zero_shot random:4:0 envs/walker/walker_7_full.xml")
    print("      equirl pretrained   # the controllers shipped with equirl and their measured returns")
    return {
        "checkpoint": ckpt_dir,
        "csv": csv_path,
        "json": json_path,
        "video": video.path,
        "seconds": total,
        "train_seconds": train_seconds,
    }
