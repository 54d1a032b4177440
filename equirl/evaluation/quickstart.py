"""The quickstart job: train briefly, evaluate zero-shot, render a video.

    python3 -m equirl quickstart

1. trains SET-PPO on the hopper suite (the values of
   configs/train/hopper_ppo_set.yaml, embedded here, with a small budget);
2. evaluates the policy deterministically on the bodies it trained on and,
   zero-shot, on walkers it never saw (the walker zero-shot split; the SET
   network takes any number of limbs);
3. renders one video of a zero-shot walker;
4. prints where the checkpoint, the table and the video are.

Running it again goes on from the run's checkpoint (nothing is retrained
once the budget is reached).
"""

from __future__ import annotations

import time
from pathlib import Path

from equirl.config_io import from_dict

RUN_DIR = "runs/quickstart"
TOTAL_STEPS = 150_000
TRAIN_BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
ZERO_SHOT_BODIES = ("walker_zero_shot",)
VIDEO_BODY = "walker_3_left_knee_right_knee"
EPISODES = 8

# configs/train/hopper_ppo_set.yaml (written by configs/make_train_configs.py), budget aside.
CONFIG = {
    "algorithm": "ppo",
    "env": {"bodies": ["hopper"], "num_envs": 64, "task": "v1", "backend": "auto", "max_limbs": 5,
            "episode_length": 1000, "frame_skip": 4, "autoreset": True, "isotropic_friction": True,
            "num_threads": None},
    "network": {"kind": "set", "width": 64, "depth": 2, "heads": 4, "ff_multiplier": 2, "vector_channels": 16,
                "invariant_channels": 8, "vector_key_channels": 4, "max_tree_distance": 8,
                "mlp_hidden": [256, 256], "squash": False, "log_std_init": -1.0, "log_std_min": -5.0,
                "log_std_max": 1.0},
    "ppo": {"rollout_length": 32, "epochs": 4, "minibatches": 8, "learning_rate": 0.0003,
            "anneal_learning_rate": False, "max_grad_norm": 0.5, "gamma": 0.99, "gae_lambda": 0.95,
            "clip_epsilon": 0.2, "value_coef": 0.5, "entropy_coef": 0.0, "reward_scale": 0.1,
            "normalize_advantages": True, "normalize_observations": True},
    "run": {"name": "quickstart", "total_steps": TOTAL_STEPS, "seed": 0, "out_dir": RUN_DIR, "log_every": 1,
            "checkpoint_every": 20, "keep_checkpoints": 1, "equivariance_every": 0, "progress": True},
}


def quickstart_config(run_dir: str = RUN_DIR, total_steps: int = TOTAL_STEPS):
    from equirl.agents.config import TrainConfig

    config = dict(CONFIG, run=dict(CONFIG["run"], out_dir=str(run_dir), total_steps=int(total_steps)))
    return from_dict(TrainConfig, config, source="quickstart config")


def _say(message: str) -> None:
    print(f"[quickstart] {message}", flush=True)


def quickstart(run_dir: str = RUN_DIR, total_steps: int = TOTAL_STEPS, video_dir: str = "videos") -> dict:
    """Run the whole job; returns the paths it wrote and the timings."""
    from equirl.agents.train import CHECKPOINTS, train
    from equirl.evaluation.evaluate import evaluate, format_table, load_policy_for_eval, stderr_log, write_outputs
    from equirl.evaluation.render import render_video

    start = time.perf_counter()
    config = quickstart_config(run_dir, total_steps)
    ckpt_dir = Path(run_dir) / CHECKPOINTS
    resume = ckpt_dir.is_dir() and any(p.name.isdigit() for p in ckpt_dir.iterdir())
    _say(f"1/3 training SET-PPO on the hopper suite for {total_steps:,} environment steps -> {run_dir}"
         + (" (resuming)" if resume else ""))
    result = train(config, resume=resume)
    train_seconds = time.perf_counter() - start
    last = result.history[-1] if result.history else {}
    if "return/mean" in last:
        _say(f"trained in {train_seconds:.0f} s; last training return {last['return/mean']:.1f}")

    _say(f"2/3 evaluating ({EPISODES} deterministic episodes per body) on the training bodies and, zero-shot, "
         f"on {', '.join(ZERO_SHOT_BODIES)}")
    policy = load_policy_for_eval(run_dir)
    bodies = TRAIN_BODIES + ZERO_SHOT_BODIES
    results = evaluate(policy, bodies, episodes=EPISODES, seeds=(0,), log=stderr_log)
    print(format_table(results), flush=True)
    csv_path, json_path = write_outputs(results, policy, bodies, None, meta={"episodes": EPISODES, "seeds": [0]})

    _say(f"3/3 rendering {VIDEO_BODY} (never seen in training)")
    video = render_video(policy, VIDEO_BODY, seed=0, out_dir=video_dir)
    total = time.perf_counter() - start
    _say(f"done in {total:.0f} s")
    print(f"  checkpoint: {ckpt_dir}/{policy.step}")
    print(f"  table:      {csv_path}  (and {json_path.name})")
    print(f"  video:      {video.path}  (return {video.episode_return:.1f}, {video.length} steps)")
    print("next: equirl eval --run " + str(run_dir) + " --bodies zero_shot random:4:0 envs/walker/walker_7_full.xml")
    return {"checkpoint": ckpt_dir, "csv": csv_path, "json": json_path, "video": video.path, "seconds": total,
            "train_seconds": train_seconds}
