"""How much action noise a body tolerates: episode lengths under zero-mean random torques, no policy.

Each body runs 16 episodes (seeded resets, the v1 task, no autoreset) with
actions tanh(sigma * N(0, 1)) on its driven dimensions, for each sigma; it
prints the median (min-max) episode length per body. A SAC-family learner
whose entropy target is H per action dimension keeps its unsquashed std near
exp(H - 1.419) (0.089 at H = -1): this table says whether that much noise
alone throws the body over.

    python benchmarks/action_noise.py [body,body,...]     # default: the three hoppers
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig

bodies = sys.argv[1].split(",") if len(sys.argv) > 1 else ["hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full"]
per = 16
env = BatchedEnv(
    EnvConfig(bodies=tuple(bodies), num_envs=per * len(bodies), max_limbs=7, autoreset=False, episode_length=1000)
)
step = jax.jit(env.step)
for sigma in (0.0, 0.01, 0.03, 0.09, 0.3, 1.0):
    s = env.reset(jax.random.PRNGKey(0))
    alive = np.ones(env.num_envs, bool)
    length = np.zeros(env.num_envs, int)
    key = jax.random.PRNGKey(1)
    for t in range(1000):
        key, k = jax.random.split(key)
        a = jnp.tanh(sigma * jax.random.normal(k, s.obs.action_mask.shape)) * s.obs.action_mask
        s = step(s, a)
        done = np.asarray(s.terminated) | np.asarray(s.truncated)
        length += alive
        alive &= ~done
        if not alive.any():
            break
    parts = [length[i * per : (i + 1) * per] for i in range(len(bodies))]
    by = [f"{b}: {np.median(p):.0f} ({p.min()}-{p.max()})" for b, p in zip(bodies, parts)]
    print(f"sigma {sigma}: median (min-max) episode length:", "; ".join(by), flush=True)
env.close()
