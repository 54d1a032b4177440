"""A Brax view of one equirl body, for Brax's own training agents.

Brax environments are written for a single environment and batched by its
wrappers (`VmapWrapper` vmaps reset/step). `BraxEnv` therefore holds a
one-environment `BatchedEnv` without autoreset, drops its batch dimension of 1
when storing the state and adds it back before stepping. Both backends work
under vmap: MJX is pure JAX, and the native backend's callback flattens the
vmapped batch.

The per-limb observation is flattened to one vector, [vectors | scalars] per
limb, so Brax's MLP networks can use it; padded limbs are zero.

Time limits are left to Brax's `EpisodeWrapper` (`episode_length` of the
training call); the inner environment never truncates, and `done` means the
body fell (or the simulation diverged).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from brax.envs.base import Env, State

from equirl.envs.batched import EnvState, single_env
from equirl.observation import NUM_SCALARS, NUM_VECTORS

# The inner episode length: effectively never, so Brax's wrapper decides.
_NO_TIME_LIMIT = 2**31 - 1


def _squeeze(tree):
    return jax.tree.map(lambda x: x[0], tree)


def _expand(tree):
    return jax.tree.map(lambda x: x[None], tree)


class BraxEnv(Env):
    """One body of the 3D-SGRL task behind Brax's `Env` interface.

    body: a 3D-SGRL body name, an MJCF path or "random:1:SEED"; task: "v1"
    or "v2"; max_limbs: limbs to pad to (default: the body's own count);
    backend: "native", "mjx" or "auto".
    """

    def __init__(
        self,
        body: str,
        *,
        task: str = "v1",
        max_limbs: int | None = None,
        backend: str = "native",
        frame_skip: int = 4,
        num_threads: int | None = None,
    ):
        self.batched = single_env(
            body,
            max_limbs,
            task=task,
            backend=backend,
            episode_length=_NO_TIME_LIMIT,
            frame_skip=frame_skip,
            num_threads=num_threads,
        )
        num_limbs = self.batched.num_limbs
        self.num_limbs = num_limbs

    # -- sizes ------------------------------------------------------------------

    @property
    def observation_size(self) -> int:
        return self.num_limbs * (NUM_VECTORS * 3 + NUM_SCALARS)

    @property
    def action_size(self) -> int:
        return self.num_limbs * 3

    @property
    def backend(self) -> str:
        return self.batched.backend_name

    def close(self) -> None:
        self.batched.close()

    # -- dynamics ---------------------------------------------------------------

    def reset(self, rng: jax.Array) -> State:
        inner = _squeeze(self.batched.reset(rng))
        zero = jnp.zeros((), jnp.float32)
        return State(
            pipeline_state=inner,
            obs=self.flat_obs(inner),
            reward=zero,
            done=zero,
            metrics=self._metrics(inner),
            info={},
        )

    def step(self, state: State, action: jax.Array) -> State:
        action = jnp.reshape(action, (1, self.num_limbs, 3))
        inner = _squeeze(self.batched.step(_expand(state.pipeline_state), action))
        return state.replace(
            pipeline_state=inner,
            obs=self.flat_obs(inner),
            reward=inner.reward.astype(jnp.float32),
            done=inner.terminated.astype(jnp.float32),
            # Wrappers may have added their own metrics: keep them.
            metrics={**state.metrics, **self._metrics(inner)},
        )

    # -- helpers ----------------------------------------------------------------

    def flat_obs(self, inner: EnvState) -> jax.Array:
        """[L, 8, 3] vectors and [L, 17] scalars -> one [L * 41] vector."""
        obs = inner.obs
        per_limb = jnp.concatenate([obs.vectors.reshape(self.num_limbs, -1), obs.scalars], axis=-1)
        return per_limb.reshape(-1).astype(jnp.float32)

    @staticmethod
    def _metrics(inner: EnvState) -> dict:
        """Per-step scalars; Brax's EpisodeWrapper sums them over an episode."""
        info = inner.info
        return {
            "nonfinite_actions": info["nonfinite_actions"].astype(jnp.float32),
            "unstable": info["unstable"].astype(jnp.float32),
            "waypoint_reached": info["waypoint_reached"].astype(jnp.float32),
        }
