"""Environment throughput: the native backend against raw MuJoCo, in one process.

For each body, with the same batch size and threads:
  raw     mujoco.rollout stepping the batch with random controls (physics only)
  native  BatchedEnv (native backend) in a jitted lax.scan with random actions:
          control steps/s x frame_skip, observations, rewards, terminations and
          autoresets included
  ratio   native / raw (goal >= 0.7)
  mjx     the same BatchedEnv on the MJX backend (compile time printed apart),
          its batch split over every device (equirl.agents.distributed)
Measurements are interleaved and the best of --repeats rounds is kept, so a
noisy neighbour on a shared machine hurts both sides alike.

    python benchmarks/env_throughput.py [--envs 64] [--steps 100] [--no-mjx]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import mujoco
import numpy as np
from mujoco import rollout

from equirl.agents.distributed import batch_sharding, describe, global_mesh
from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig

BODIES = ("hopper_5_full", "walker_7_full", "humanoid_9_full", "cheetah_14_full")


def raw_rollout(model: mujoco.MjModel, num_envs: int, physics_steps: int, threads: int, seed: int):
    """Returns a function timing one rollout of physics_steps from noisy default states."""
    rng = np.random.default_rng(seed)
    data = mujoco.MjData(model)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state = np.zeros((num_envs, mujoco.mj_stateSize(model, spec)))
    for row in state:
        data.qpos[:] = model.qpos0 + rng.uniform(-0.005, 0.005, model.nq)
        mujoco.mj_getState(model, data, row, spec)
    controls = rng.uniform(-1.0, 1.0, (num_envs, physics_steps, model.nu))
    pool = rollout.Rollout(nthread=threads)
    datas = [mujoco.MjData(model) for _ in range(threads)]

    def run() -> float:
        start = time.perf_counter()
        pool.rollout(model, datas, state, controls)
        return num_envs * physics_steps / (time.perf_counter() - start)

    return run, pool


def env_loop(env: BatchedEnv, control_steps: int):
    """Returns (compile seconds, a function timing control_steps of random actions)."""

    def many(state, key):
        def body(carry, _):
            state, key = carry
            key, sub = jax.random.split(key)
            action = jax.random.uniform(sub, (env.num_envs,) + env.action_shape, minval=-1.0, maxval=1.0)
            return (env.step(state, action), key), None

        return jax.lax.scan(body, (state, key), None, length=control_steps)[0]

    many = jax.jit(many)
    state = env.reset(jax.random.PRNGKey(0))
    if env.mesh is not None:  # every device holds its share of the environments
        state = jax.device_put(state, batch_sharding(env.mesh))
    key = jax.random.PRNGKey(1)
    start = time.perf_counter()
    carry = jax.block_until_ready(many(state, key))
    compile_s = time.perf_counter() - start

    def run() -> float:
        nonlocal carry
        start = time.perf_counter()
        carry = jax.block_until_ready(many(*carry))
        return env.num_envs * control_steps * env.config.frame_skip / (time.perf_counter() - start)

    return compile_s, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="control steps per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bodies", nargs="+", default=list(BODIES))
    parser.add_argument("--no-mjx", action="store_true")
    parser.add_argument("--mjx-steps", type=int, default=10)
    args = parser.parse_args()

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {threads} threads, "
        f"jax {jax.__version__} on {jax.default_backend()} ({describe(global_mesh())}), "
        f"mujoco {mujoco.__version__}, {args.envs} envs"
    )
    header = (
        "| body | raw MuJoCo physics steps/s | native env steps/s x4 | ratio | MJX env steps/s x4 | MJX compile s |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|")
    for body in args.bodies:
        env = BatchedEnv(EnvConfig(bodies=(body,), num_envs=args.envs, backend="native"))
        model = env.morphologies[0].model
        raw, pool = raw_rollout(model, args.envs, args.steps * env.config.frame_skip, threads, seed=0)
        _, native = env_loop(env, args.steps)
        raw_best, native_best = 0.0, 0.0
        for _ in range(args.repeats):
            raw_best = max(raw_best, raw())
            native_best = max(native_best, native())
        pool.close()
        env.close()
        mjx_rate, mjx_compile = float("nan"), float("nan")
        if not args.no_mjx:
            mjx_env = BatchedEnv(EnvConfig(bodies=(body,), num_envs=args.envs, backend="mjx"), mesh=global_mesh())
            mjx_compile, mjx_run = env_loop(mjx_env, args.mjx_steps)
            mjx_rate = mjx_run()
        print(
            f"| {body} | {raw_best:,.0f} | {native_best:,.0f} | {native_best / raw_best:.2f} | "
            f"{mjx_rate:,.0f} | {mjx_compile:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
