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

--update: what training pays instead. One full gradient update of each
off-policy algorithm (--algorithms, default sac,crossq,td3; critic, actor and
temperature as the rule does them) at --batch, for each network kind at its
preset sizes (equirl.presets: the hopper-suite preset of that algorithm), on
hopper_5_full and walker_7_full observations: ms per update (the mean over
the policy-delay cycle: the actor steps every `policy_delay` updates) and
updates/s; ms of the update that includes the actor, its GFLOP (XLA's cost
analysis) and GFLOP/s; and the profile of the compiled HLO: kernels
(operations run one after another, fusions counted once; see `kernel_count`)
and the time per kernel. It ends with one line per body,
`update ratio set/mlp_heading <body>: X.XX` (SAC's update).

    python benchmarks/nn_cost.py --update [--algorithms sac,crossq] [--kinds set,mlp_heading]
    python benchmarks/nn_cost.py --update --algorithms sac --kinds set,set+q_kind=mlp_heading,mlp_heading
    python benchmarks/nn_cost.py --update --algorithms crossq --kinds "mlp_heading,mlp_heading+q_hidden=[1024,1024]"

A kind may carry network overrides after "+" (a variant of the preset sizes).
"""

from __future__ import annotations

import argparse
import datetime
import re
import time

import jax
import jax.numpy as jnp

from equirl.config_io import apply_overrides
from equirl.machine import describe as machine
from equirl.nn import NetworkConfig, count_parameters, init_networks, make_networks


def body_observations(body: str, batch: int, max_limbs: int):
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig

    env = BatchedEnv(EnvConfig(bodies=(body,), num_envs=batch, max_limbs=max_limbs))
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


# Instructions that launch no work of their own on XLA:CPU.
_FREE_OPS = ("parameter", "constant", "get-tuple-element", "tuple", "bitcast", "copy-start", "copy-done")


def opcode_of(instruction: str) -> str:
    """'%add.1 = f32[8]{0} add(%a, %b), ...' -> 'add' (the type may be a tuple)."""
    found = re.search(r" = .*?\s([a-z][a-z0-9-]*)\(", instruction)
    return found.group(1) if found else ""


def kernel_count(hlo_text: str) -> int:
    """Operations XLA:CPU runs one after another in a compiled module: the instructions of
    the entry computation and of the control flow it runs (loop bodies and conditions,
    branches, calls), a fusion counting once, less the free ones above. With small arrays
    each costs a roughly fixed overhead, so this count, not the FLOPs, is what a
    many-small-einsum network pays for."""
    computations, name, entry = {}, None, None
    for line in hlo_text.splitlines():
        stripped = line.strip()
        if stripped.endswith("{") and " -> " in stripped:
            is_entry = stripped.startswith("ENTRY")
            name = stripped.removeprefix("ENTRY").strip().lstrip("%").split(" ", 1)[0]
            computations[name] = []
            entry = name if is_entry else entry
        elif stripped == "}":
            name = None
        elif name is not None and " = " in stripped:
            computations[name].append(stripped)

    def called(instruction: str) -> list[str]:
        opcode = opcode_of(instruction)
        keys = ("body=", "condition=", "true_computation=", "false_computation=", "branch_computations={")
        keys += ("to_apply=",) if opcode == "call" else ()
        names = []
        for key in keys:
            for part in instruction.split(key)[1:]:
                names += [
                    n.strip().lstrip("%") for n in part.split("}")[0].split(",")[0 if key.endswith("=") else None :]
                ]
        return [n.split(" ")[0].rstrip(",") for n in names if n]

    count, todo, seen = 0, [entry], set()
    while todo:
        current = todo.pop()
        if current in seen or current not in computations:
            continue
        seen.add(current)
        for instruction in computations[current]:
            todo += called(instruction)
            count += opcode_of(instruction) not in _FREE_OPS
    return count


def update_step(algorithm: str, kind: str, obs, max_limbs: int):
    """(GFLOP, kernels, {phase: a function timing one update in seconds}) of `algorithm`'s rule at its
    preset sizes. The actor steps every `policy_delay` updates (a lax.cond on the learner's step
    counter), so each phase of that cycle is timed from its own step value: timing one step value
    alone would time the critic-only branch forever (TD3's first step) or the actor's every time
    (CrossQ's). XLA's cost analysis counts a conditional's costliest branch, so GFLOP is the work of
    the update that includes the actor."""
    from equirl.agents.offpolicy import Batch
    from equirl.agents.registry import spec
    from equirl.presets import train_preset

    kind, *overrides = kind.split("+")  # e.g. set+q_kind=mlp_heading+q_width=32: a variant of a preset
    config = train_preset("hopper", algorithm, kind)
    # Network fields as `--set network.<field>=<value>` reads them (YAML, checked): 32, mlp_heading, [1024,1024].
    config = apply_overrides(config, [f"network.{o}" for o in overrides], source="--kinds")
    nets = make_networks(config.network, max_limbs)
    rule = spec(config.algorithm).make_rule(nets, config)
    actions = jnp.where(
        obs.action_mask, jax.random.uniform(jax.random.PRNGKey(1), obs.action_mask.shape, minval=-1.0, maxval=1.0), 0.0
    )
    n = obs.limb_mask.shape[0]
    batch = Batch(obs, actions, jax.random.normal(jax.random.PRNGKey(2), (n,)), obs, jnp.full((n,), 0.99))
    learner = jax.jit(rule.init)(jax.random.PRNGKey(0), obs, actions)
    step = jax.jit(rule.update).lower(learner, batch, jax.random.PRNGKey(3)).compile()
    cost = step.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    gflop = float(cost.get("flops", float("nan"))) / 1e9
    delay = getattr(getattr(config, config.algorithm.removesuffix("_sgrl")), "policy_delay", 1)

    def timer(phase: int):
        at = learner._replace(step=jnp.asarray(phase, learner.step.dtype))

        def run() -> float:
            start = time.perf_counter()
            jax.block_until_ready(step(at, batch, jax.random.PRNGKey(3)))
            return time.perf_counter() - start

        return run

    return gflop, kernel_count(step.as_text()), {phase: timer(phase) for phase in range(delay)}


def update_main(args) -> None:
    algorithms = [a for a in args.algorithms.split(",") if a]
    kinds = split_kinds(args.kinds)
    print(
        f"{datetime.date.today()}, {machine()}, jax {jax.__version__}; one jitted update at batch {args.batch}, "
        f"preset sizes; best of {args.rounds} interleaved rounds of {args.calls} calls\n"
    )
    print(
        "| body | algorithm | network | ms per update | updates/s | ms with actor | GFLOP | GFLOP/s "
        "| kernels | µs per kernel |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for body, limbs in (("hopper_5_full", 5), ("walker_7_full", 7)):
        per_update = {}  # (algorithm, kind) -> ms, the mean over the delay cycle
        obs = body_observations(body, args.batch, limbs)
        setups = {(a, k): update_step(a, k, obs, limbs) for a in algorithms for k in kinds}
        best = {(key, p): float("inf") for key, (_, _, phases) in setups.items() for p in phases}
        for _ in range(args.rounds):
            for key, (_, _, phases) in setups.items():
                for phase, run in phases.items():
                    best[key, phase] = min(best[key, phase], sum(run() for _ in range(args.calls)) / args.calls)
        for (algorithm, kind), (gflop, kernels, phases) in setups.items():
            times = [best[(algorithm, kind), p] * 1e3 for p in phases]
            ms, full = sum(times) / len(times), max(times)  # mean over the delay cycle; the actor's step
            per_update[algorithm, kind] = ms
            print(
                f"| {body} | {algorithm} | {kind} | {ms:.1f} | {1e3 / ms:.1f} | {full:.1f} | {gflop:.2f} "
                f"| {gflop / full * 1e3:.1f} | {kernels:,} | {full * 1e3 / kernels:.1f} |",
                flush=True,
            )
        if ("sac", "set") in per_update and ("sac", "mlp_heading") in per_update:
            ratios[body] = per_update["sac", "set"] / per_update["sac", "mlp_heading"]
    print()
    for body, ratio in ratios.items():
        print(f"update ratio set/mlp_heading {body}: {ratio:.2f}")


def split_kinds(text: str) -> list[str]:
    """--kinds on its commas, but not those inside a [list] value: "mlp_heading,mlp_heading+q_hidden=[1024,1024]"."""
    return [k.strip() for k in re.split(r",(?![^\[]*\])", text) if k.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--max-limbs", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=3, help="timed calls per round (their mean is one sample)")
    parser.add_argument("--kinds", default="set,transformer,mlp,mlp_heading")
    parser.add_argument("--update", action="store_true", help="time off-policy updates instead (see above)")
    parser.add_argument("--algorithms", default="sac,crossq,td3")
    args = parser.parse_args()
    if args.update:
        update_main(args)
        return
    kinds = split_kinds(args.kinds)

    obs = body_observations("walker_7_full", args.batch, args.max_limbs)
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
