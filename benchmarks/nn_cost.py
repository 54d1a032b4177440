"""Cost of the networks: parameters and one jitted forward+backward pass.

On a batch of observations of walker_7_full (from BatchedEnv.reset, padded to
--max-limbs slots), for each network kind at the default NetworkConfig (SET
and the plain transformer share width, depth and heads):
  params    actor and critic parameter counts
  ms        one jitted forward+backward of a PPO-style loss through actor and
            critic together (log-prob and entropy of fixed actions, squared
            value error)
  ratio     ms / ms of the plain transformer (goal for SET: <= 2)
Runs are interleaved across kinds and the best of --rounds is kept, so a
noisy neighbour on a shared machine hurts every kind alike.

    python benchmarks/nn_cost.py [--batch 256] [--rounds 10] [--calls 3] [--kinds set,transformer,...]
"""

from __future__ import annotations

import argparse
import datetime
import time

import jax
import jax.numpy as jnp

from equirl.machine import describe as machine
from equirl.nn import NetworkConfig, count_parameters, init_networks, make_networks


def walker_observations(batch: int, max_limbs: int):
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig

    env = BatchedEnv(EnvConfig(bodies=("walker_7_full",), num_envs=batch, max_limbs=max_limbs))
    try:
        return jax.block_until_ready(env.reset(jax.random.PRNGKey(0)).obs)
    finally:
        env.close()


def training_step(kind: str, obs, max_limbs: int):
    """(parameter counts, compile seconds, a function timing one call in seconds)."""
    nets = make_networks(NetworkConfig(kind=kind), max_limbs)
    params = init_networks(nets, jax.random.PRNGKey(0), obs)
    actions = jax.random.uniform(jax.random.PRNGKey(1), obs.action_mask.shape, minval=-1.0, maxval=1.0)
    returns = jax.random.normal(jax.random.PRNGKey(2), obs.limb_mask.shape[:1])

    def loss(actor_params, critic_params):
        dist = nets.actor.apply(actor_params, obs)
        value = nets.critic.apply(critic_params, obs)
        return -jnp.mean(dist.log_prob(actions)) - 0.01 * jnp.mean(dist.entropy()) + jnp.mean((value - returns) ** 2)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    start = time.perf_counter()
    jax.block_until_ready(step(params.actor, params.critic))
    compile_s = time.perf_counter() - start

    def run() -> float:
        start = time.perf_counter()
        jax.block_until_ready(step(params.actor, params.critic))
        return time.perf_counter() - start

    return (count_parameters(params.actor), count_parameters(params.critic)), compile_s, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--max-limbs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per round (their mean is one sample)")
    parser.add_argument("--kinds", default="set,transformer,mlp,mlp_heading")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]

    obs = walker_observations(args.batch, args.max_limbs)
    setups = {kind: training_step(kind, obs, args.max_limbs) for kind in kinds}
    best = {kind: float("inf") for kind in kinds}
    for _ in range(args.rounds):
        for kind in kinds:
            run = setups[kind][2]
            best[kind] = min(best[kind], sum(run() for _ in range(args.calls)) / args.calls)

    cfg = NetworkConfig()
    print(
        f"{datetime.date.today()}, {machine()}, jax {jax.__version__}; "
        f"batch {args.batch} walker_7_full observations padded to {args.max_limbs} limbs; "
        f"width {cfg.width}, depth {cfg.depth}, heads {cfg.heads}, vector channels {cfg.vector_channels}; "
        f"best of {args.rounds} interleaved rounds of {args.calls} calls\n"
    )
    reference = best.get("transformer")
    print(
        "| network | actor params | critic params | compile s "
        "| ms per forward+backward (actor+critic) | ratio to transformer |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        (actor_n, critic_n), compile_s, _ = setups[kind]
        ratio = f"{best[kind] / reference:.2f}" if reference else "-"
        print(f"| {kind} | {actor_n:,} | {critic_n:,} | {compile_s:.1f} | {best[kind] * 1e3:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
