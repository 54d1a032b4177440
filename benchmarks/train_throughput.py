"""PPO training throughput: our PPO against Brax's `ppo.train` on one body, in one process.

Both train an MLP policy and value network of the same hidden sizes on the
same body, physics backend, number of environments and batch arrangement:

  ours   equirl.agents.ppo (`make_ppo`) on a `BatchedEnv`; one iteration
         rolls out --rollout steps in each of --envs environments, then runs
         --epochs passes of --minibatches minibatches; data parallel over
         every device, as `equirl train` runs (equirl.agents.distributed).
  brax   brax.training.agents.ppo.train on our Brax adapter
         (`equirl.envs.brax_env.BraxEnv`, vmapped by Brax's wrappers), with
         unroll_length = --rollout, num_minibatches = --minibatches,
         batch_size = --envs / --minibatches and num_updates_per_batch =
         --epochs. Brax collects batch_size * num_minibatches * unroll_length
         = envs * rollout env steps per training step: one unroll of every
         environment, exactly one of our iterations, cut into the same number
         and size of minibatches (batch_size sequences of unroll_length).

Env steps are control steps (frame_skip physics steps each; action_repeat 1 in
Brax). Shared settings: observation normalisation on, learning rate, gamma,
GAE lambda, clip epsilon, gradient clipping, value coefficient, reward scale,
entropy cost 0, advantage normalisation, episode length, GELU activations and a
Gaussian policy with a state-dependent log-std head (Brax: distribution
"normal", state_dependent_std). What still differs, by design of each code
base rather than of this benchmark: the MLP input (ours flattens the padded
per-limb observation with parent one-hots and masks, Brax's adapter a flat
[L * 41] vector), time limits (we bootstrap from V(final obs) of truncated
episodes; Brax masks truncated steps out of GAE and resets an environment to
its first state), and Brax recomputes values and GAE per minibatch.

Timing, steady state only:
  ours   the iteration is jitted (state donated) and called once to compile;
         each round then times --iterations calls, blocking on the result.
  brax   num_evals = rounds + 3 with run_evals=False: rounds + 2 training
         epochs of --iterations training steps each, each followed by
         progress_fn, and no evaluation episodes at all (so no eval env steps
         to exclude; the evaluator only resets its one env at construction).
         Brax's `training/sps` times one epoch alone: one compiled call,
         blocked on. The first epoch compiles, and on jax 0.9 Brax's pmapped
         epoch compiles once more on its second call; epochs during which jax
         compiled anything (seen through jax.monitoring) are dropped.
  One round of ours runs inside each progress_fn call, so the two are
  interleaved, and the best of the rounds that compiled nothing is kept for
  each: a noisy neighbour on a shared machine hurts both alike.
  compile s  seconds jax spent tracing, lowering and compiling (jax.monitoring
             events): ours in its first iteration call, Brax in its epochs.
  setup s    ours: agent.init (environment reset, parameters; compile
             included); Brax: the rest of ppo.train outside its epochs and
             our rounds (wrapping, resets, parameter init, evaluator).
  ratio      ours / brax env steps per second (goal >= 1.0)

    python benchmarks/train_throughput.py [--body hopper_5_full] [--envs 64] [--iterations 10]
        [--rounds 3] [--backend native|mjx] [--hidden 256 256]
    # on a GPU:  --backend mjx --envs 4096 --minibatches 32
"""

from __future__ import annotations

import argparse
import datetime
import functools
import time

import flax.linen as nn
import jax
from brax.training.agents.ppo import networks as brax_ppo_networks
from brax.training.agents.ppo import train as brax_ppo

from equirl.agents.config import PPOConfig
from equirl.agents.distributed import describe, global_mesh
from equirl.agents.ppo import make_ppo
from equirl.envs.batched import BatchedEnv
from equirl.envs.brax_env import BraxEnv
from equirl.envs.config import EnvConfig
from equirl.machine import describe as machine
from equirl.nn import NetworkConfig, make_networks


class CompileClock:
    """Seconds jax spends tracing, lowering and compiling, while installed."""

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self):
        self.seconds = 0.0

    def _listen(self, event: str, duration: float, **_) -> None:
        if event in self.EVENTS:
            self.seconds += duration

    def __enter__(self) -> "CompileClock":
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listen)


def _compiled_in(compile_s: float, wall_s: float) -> bool:
    """Whether a timed call spent a noticeable part of its time compiling."""
    return compile_s > 0.01 * wall_s


def ours_runner(
    env: BatchedEnv, hidden: tuple[int, ...], config: PPOConfig, iterations: int, seed: int, clock: CompileClock
):
    """Returns (setup s, compile s, env steps per iteration, a function timing
    `iterations` iterations -> (env steps/s, whether it compiled))."""
    networks = make_networks(NetworkConfig(kind="mlp", mlp_hidden=hidden), env.config.max_limbs)
    agent = make_ppo(env, networks, config, total_iterations=iterations)
    start = time.perf_counter()
    state = jax.block_until_ready(jax.jit(agent.init)(jax.random.PRNGKey(seed)))
    setup_s = time.perf_counter() - start

    iteration = jax.jit(agent.iteration, donate_argnums=0)
    before = clock.seconds
    state, _ = jax.block_until_ready(iteration(state))
    compile_s = clock.seconds - before

    def run() -> tuple[float, bool]:
        nonlocal state
        before = clock.seconds
        start = time.perf_counter()
        for _ in range(iterations):
            state, metrics = iteration(state)
        jax.block_until_ready((state, metrics))
        wall = time.perf_counter() - start
        return iterations * agent.steps_per_iteration / wall, _compiled_in(clock.seconds - before, wall)

    return setup_s, compile_s, agent.steps_per_iteration, run


def measure(
    body: str = "hopper_5_full",
    envs: int = 64,
    rollout: int = 32,
    minibatches: int = 4,
    epochs: int = 4,
    iterations: int = 10,
    rounds: int = 3,
    hidden: tuple[int, ...] = (256, 256),
    backend: str = "native",
    episode_length: int = 1000,
    seed: int = 0,
) -> dict:
    """Runs both and returns their rates, compile and setup times and the settings."""
    if envs % minibatches:
        raise ValueError(
            f"envs={envs}: must be divisible by minibatches={minibatches} "
            "(Brax's batch_size = envs / minibatches sequences per minibatch)"
        )
    config = PPOConfig(rollout_length=rollout, epochs=epochs, minibatches=minibatches)
    brax_env = BraxEnv(body, backend=backend)
    env = BatchedEnv(
        EnvConfig(
            bodies=(body,), num_envs=envs, backend=backend, max_limbs=brax_env.num_limbs, episode_length=episode_length
        ),
        mesh=global_mesh(),
    )
    # One Brax training step = one of our iterations; one Brax epoch = `iterations`
    # of them. The first epoch compiles; on jax 0.9 Brax's pmapped epoch compiles
    # again on its second call, so two epochs more than the timed rounds.
    brax_epochs = rounds + 2
    epoch_steps = None
    with CompileClock() as clock:
        try:
            setup_ours, compile_ours, steps_per_iteration, run_ours = ours_runner(
                env, hidden, config, iterations, seed, clock
            )
            epoch_steps = iterations * steps_per_iteration
            brax_epoch_log: list[dict] = []
            ours_log: list[tuple[float, bool]] = []
            in_callbacks = 0.0
            compile_mark = clock.seconds

            def progress(step, metrics):
                nonlocal in_callbacks, compile_mark
                start = time.perf_counter()
                walltime = float(metrics["training/walltime"])
                epoch_s = walltime - (brax_epoch_log[-1]["walltime"] if brax_epoch_log else 0.0)
                compile_s = clock.seconds - compile_mark
                brax_epoch_log.append(
                    {
                        "step": int(step),
                        "sps": float(metrics["training/sps"]),
                        "walltime": walltime,
                        "compile_s": compile_s,
                        "compiled": _compiled_in(compile_s, epoch_s),
                    }
                )
                ours_log.append(run_ours())  # interleaved: one round of ours after each Brax epoch
                compile_mark = clock.seconds
                in_callbacks += time.perf_counter() - start

            network_factory = functools.partial(
                brax_ppo_networks.make_ppo_networks,
                policy_hidden_layer_sizes=hidden,
                value_hidden_layer_sizes=hidden,
                activation=nn.gelu,
                distribution_type="normal",
                noise_std_type="log",
                state_dependent_std=True,
            )
            start = time.perf_counter()
            brax_ppo.train(
                brax_env,
                num_timesteps=brax_epochs * epoch_steps,
                num_envs=envs,
                episode_length=episode_length,
                action_repeat=1,
                unroll_length=rollout,
                batch_size=envs // minibatches,
                num_minibatches=minibatches,
                num_updates_per_batch=epochs,
                learning_rate=config.learning_rate,
                entropy_cost=config.entropy_coef,
                discounting=config.gamma,
                gae_lambda=config.gae_lambda,
                clipping_epsilon=config.clip_epsilon,
                max_grad_norm=config.max_grad_norm,
                vf_loss_coefficient=config.value_coef,
                reward_scaling=config.reward_scale,
                normalize_advantage=config.normalize_advantages,
                normalize_observations=config.normalize_observations,
                network_factory=network_factory,
                seed=seed,
                # num_evals - 1 training epochs, each followed by progress_fn;
                # run_evals=False: no evaluation episodes (and no initial one).
                num_evals=brax_epochs + 1,
                run_evals=False,
                num_eval_envs=1,  # the evaluator still resets its envs once, at construction
                progress_fn=progress,
            )
            brax_total = time.perf_counter() - start
        finally:
            env.close()
            brax_env.close()

    if len(brax_epoch_log) != brax_epochs or brax_epoch_log[-1]["step"] != brax_epochs * epoch_steps:
        raise RuntimeError(f"Brax ran {len(brax_epoch_log)} epochs, expected {brax_epochs} of {epoch_steps} steps")
    brax_clean = [e["sps"] for e in brax_epoch_log if not e["compiled"]]
    ours_clean = [rate for rate, compiled in ours_log if not compiled]
    if not brax_clean or not ours_clean:
        raise RuntimeError("every timed round compiled something; raise --rounds")
    brax_rate, ours_rate = max(brax_clean), max(ours_clean)
    return {
        "body": body,
        "envs": envs,
        "rollout": rollout,
        "minibatches": minibatches,
        "epochs": epochs,
        "iterations": iterations,
        "rounds": rounds,
        "hidden": tuple(hidden),
        "backend": env.backend_name,
        "episode_length": episode_length,
        "steps_per_iteration": steps_per_iteration,
        "ours": {"sps": ours_rate, "compile_s": compile_ours, "setup_s": setup_ours, "timed_rounds": len(ours_clean)},
        "brax": {
            "sps": brax_rate,
            "compile_s": sum(e["compile_s"] for e in brax_epoch_log),
            "setup_s": brax_total - brax_epoch_log[-1]["walltime"] - in_callbacks,
            "timed_rounds": len(brax_clean),
            "epochs_compiling": sum(e["compiled"] for e in brax_epoch_log),
        },
        "ratio": ours_rate / brax_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--body", default="hopper_5_full")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--rollout", type=int, default=32, help="our rollout_length = Brax's unroll_length")
    parser.add_argument("--minibatches", type=int, default=4, help="per epoch; must divide --envs")
    parser.add_argument("--epochs", type=int, default=4, help="= Brax's num_updates_per_batch")
    parser.add_argument("--iterations", type=int, default=10, help="iterations (Brax training steps) per timed round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed rounds (Brax runs two more epochs); the best is kept"
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="MLP hidden sizes (policy and value)")
    parser.add_argument("--backend", choices=("native", "mjx"), default="native")
    parser.add_argument("--episode-length", type=int, default=1000)
    args = parser.parse_args()

    r = measure(
        body=args.body,
        envs=args.envs,
        rollout=args.rollout,
        minibatches=args.minibatches,
        epochs=args.epochs,
        iterations=args.iterations,
        rounds=args.rounds,
        hidden=tuple(args.hidden),
        backend=args.backend,
        episode_length=args.episode_length,
    )
    print(
        f"# {datetime.date.today()}, {machine()}, jax {jax.__version__} on {jax.default_backend()} "
        f"({describe(global_mesh())}); "
        f"{r['body']}, {r['backend']} backend, {r['envs']} envs x {r['rollout']} steps = "
        f"{r['steps_per_iteration']} env steps per iteration (Brax: batch_size {r['envs'] // r['minibatches']} x "
        f"num_minibatches {r['minibatches']} x unroll_length {r['rollout']}), {r['epochs']} epochs x "
        f"{r['minibatches']} minibatches, MLP {list(r['hidden'])} (policy and value), episode length "
        f"{r['episode_length']}; best of interleaved rounds of {r['iterations']} iterations "
        f"(Brax: {r['brax']['epochs_compiling']} compiling epochs dropped)"
    )
    print("| trainer | env steps/s | timed rounds | compile s | setup s |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (("ours", "equirl PPO"), ("brax", "brax ppo.train")):
        m = r[name]
        print(f"| {label} | {m['sps']:,.0f} | {m['timed_rounds']} | {m['compile_s']:.1f} | {m['setup_s']:.1f} |")
    print(f"\nratio ours / brax: {r['ratio']:.2f} (goal >= 1.0)")


if __name__ == "__main__":
    main()
