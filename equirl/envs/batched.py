"""One object that steps B environments, possibly of different bodies, at once.

`reset` and `step` are pure functions of their arguments (the environment's
tables and physics backend are fixed at construction), so they can be
jitted, scanned over and placed inside a compiled training loop.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from equirl.envs import lqr, position_control, task
from equirl.envs.bodies import resolve
from equirl.envs.config import EnvConfig
from equirl.envs.tables import build_tables, padded_sizes
from equirl.envs.torso_damping import TorsoDamping
from equirl.errors import ConfigError
from equirl.observation import Observation

# Enough room for any body when only its own limb count is wanted.
UNBOUNDED_LIMBS = 1 << 20


@struct.dataclass
class EnvState:
    qpos: jax.Array  # [B, nq] padded generalised positions
    qvel: jax.Array  # [B, nv]
    time: jax.Array  # [B] physics time
    target: jax.Array  # [B, 2] target xy
    key: jax.Array  # [B, 2] per-environment random key
    steps: jax.Array  # [B] control steps since the episode began
    episode_return: jax.Array  # [B]
    obs: Observation
    reward: jax.Array  # [B] reward of the last step
    terminated: jax.Array  # [B] bool: the episode ended (do not bootstrap)
    truncated: jax.Array  # [B] bool: the time limit cut it (bootstrap)
    info: dict


def step_info(final_obs, episode_return, episode_length, nonfinite, unstable, waypoint, end_reasons) -> dict:
    """The info of an EnvState (the physics and the imagined environment alike)."""
    return {
        "final_obs": final_obs,  # observation the step ended in, before any autoreset
        "episode_return": episode_return,  # return of the episode so far (complete if done)
        "episode_length": episode_length,
        "nonfinite_actions": nonfinite,  # NaN/Inf action entries zeroed this step
        "unstable": unstable,  # the simulation (or a model's prediction) diverged; the episode was ended
        "waypoint_reached": waypoint,  # v2: a new target was drawn this step
        "end_reasons": end_reasons,  # int32 bit mask over task.END_REASONS (0 while the episode goes on)
    }


def sanitize_action(action: jax.Array, action_mask: jax.Array, dtype) -> tuple[jax.Array, jax.Array]:
    """(action with NaN/Inf entries zeroed, clipped to [-1, 1] and masked; count of
    non-finite entries per environment [B]): what every environment applies."""
    action = jnp.asarray(action, dtype)
    finite = jnp.isfinite(action)
    nonfinite = jnp.sum(~finite, axis=(-2, -1)).astype(jnp.int32)
    return jnp.clip(jnp.where(finite, action, 0.0), -1.0, 1.0) * action_mask, nonfinite


# What a new episode replaces in the rows that ended; reward, terminated, truncated and
# info stay those of the step that ended it.
EPISODE_FIELDS = ("qpos", "qvel", "time", "target", "key", "steps", "episode_return", "obs")


def select_rows(rows: jax.Array, new: Any, old: Any) -> Any:
    """Per-row choice between two pytrees with a leading batch axis: `new` where rows [B] is true."""
    pick = lambda a, b: jnp.where(rows.reshape(rows.shape + (1,) * (b.ndim - 1)), a, b)  # noqa: E731
    return jax.tree.map(pick, new, old)


def autoreset(after, fresh: Callable[[], Any], fields: tuple[str, ...]):
    """`after` with `fields` of the rows whose episode ended (terminated or truncated) taken
    from `fresh()`, a start state of the same kind. Most steps end no episode, so the reset
    work is skipped then (lax.cond). Shared by the physics and the imagined environment."""
    done = after.terminated | after.truncated
    carried = {name: getattr(after, name) for name in fields}

    def reset_done(_):
        start = fresh()
        return select_rows(done, {name: getattr(start, name) for name in fields}, carried)

    return after.replace(**jax.lax.cond(jnp.any(done), reset_done, lambda _: carried, None))


class BatchedEnv:
    """The 3D-SGRL task over a batch of environments and any mix of bodies."""

    def __init__(self, config: EnvConfig, mesh=None):
        """mesh: a one-axis jax.sharding.Mesh to split the batch over (training);
        each device then steps its own environments. None: no sharding."""
        self.config = config
        self.mesh = mesh
        if mesh is not None and config.num_envs % mesh.size:
            raise ConfigError(f"num_envs={config.num_envs}: must be divisible by the number of devices ({mesh.size})")
        pairs = [
            pair
            for entry in config.bodies
            for pair in resolve(entry, max_limbs=config.max_limbs, isotropic_friction=config.isotropic_friction)
        ]
        self.morphologies = [m for m, _ in pairs]
        if any(config.hinge_position_control):  # part of the controller: servos in each MjModel
            for morph in self.morphologies:
                position_control.apply(
                    morph, config.hinge_position_control, config.position_gain, config.position_damping
                )
        self.params = [p for _, p in pairs]
        if config.num_envs < len(self.morphologies):
            raise ConfigError(
                f"num_envs={config.num_envs}: fewer environments than the {len(self.morphologies)} bodies requested"
            )
        self.body_of_env = np.arange(config.num_envs) % len(self.morphologies)
        self.sizes = padded_sizes(self.morphologies, config.max_limbs)
        self.tables = build_tables(self.morphologies, self.params, self.body_of_env, self.sizes, config.frame_skip)
        if config.training_tilt_limit is not None:
            limit = float(config.training_tilt_limit)
            t = self.tables
            self.tables = t.replace(
                max_tilt=np.minimum(t.max_tilt, limit),
                max_pitch=np.minimum(t.max_pitch, limit),
                max_roll=np.minimum(t.max_roll, limit),
            )
        if config.training_progress_weight != 1.0:
            weight = self.tables.progress_weight * config.training_progress_weight
            self.tables = self.tables.replace(progress_weight=weight)
        if config.training_tilt_penalty:
            penalty = np.full_like(self.tables.progress_weight, config.training_tilt_penalty)
            self.tables = self.tables.replace(tilt_penalty=penalty)
        self.base_gains = lqr.tables(self) if config.base_controller == lqr.NAME else None
        self.backend_name = config.resolved_backend()
        self.torso_damping = None
        if config.training_torso_damping:
            if config.training_torso_damping_steps and self.backend_name != "native":
                raise ConfigError("training_torso_damping_steps: fading the damping needs the native backend")
            self.torso_damping = TorsoDamping(
                self.morphologies,
                config.training_torso_damping,
                config.training_torso_damping_steps,
                config.training_torso_damping_axes,
            )
            self.torso_damping.set(0)  # before MJX copies the models
        if self.backend_name == "native":
            from equirl.envs.backends.native import NativeBackend

            self.backend = NativeBackend(
                self.morphologies, self.body_of_env, config.frame_skip, config.resolved_threads()
            )
        else:
            from equirl.envs.backends.mjx import MjxBackend

            self.backend = MjxBackend(self.morphologies, self.body_of_env, config.frame_skip)
        self._physics = self.backend.step if mesh is None else self.backend.sharded_step(mesh)

    def set_training_progress(self, env_steps: int) -> None:
        """Bring the training aids that change over training to where `env_steps` steps put
        them (the torso damping's fade); a training loop calls it before each iteration."""
        if self.torso_damping is not None:
            self.torso_damping.set(env_steps)

    # -- descriptions ---------------------------------------------------------

    @property
    def num_envs(self) -> int:
        return self.config.num_envs

    @property
    def num_limbs(self) -> int:
        return self.sizes.num_limbs

    @property
    def action_shape(self) -> tuple[int, int]:
        return (self.sizes.num_limbs, 3)

    @property
    def body_names(self) -> list[str]:
        return [self.morphologies[b].name for b in self.body_of_env]

    def close(self) -> None:
        self.backend.close()

    # -- the task -------------------------------------------------------------

    def observe(self, qpos: jax.Array, qvel: jax.Array, target: jax.Array) -> Observation:
        """The observation of arbitrary states (e.g. transformed ones)."""
        return self._observe(qpos, qvel, target)

    @functools.cached_property
    def _observe(self):
        return jax.jit(lambda q, v, t: task.observe(self.tables, task.kinematics(self.tables, q, v), q, t))

    def with_state(self, state: EnvState, qpos: jax.Array, qvel: jax.Array, target: jax.Array) -> EnvState:
        """`state` moved to new physics coordinates and targets, its observation recomputed."""
        return state.replace(qpos=qpos, qvel=qvel, target=target, obs=self.observe(qpos, qvel, target))

    def reset(self, key: jax.Array) -> EnvState:
        return self._reset(key)

    @functools.cached_property
    def _reset(self):
        # Compiled: called eagerly, the kinematics and observation run op by op
        # (about 5 s a call on a 2-core CPU, against 1 ms once compiled).
        return jax.jit(lambda key: self.start_states(jax.random.split(key, self.num_envs)))

    def start_states(self, keys: jax.Array) -> EnvState:
        """Fresh episodes, one per key [B, 2] (the imagined environment draws its starts here too)."""
        t = self.tables
        split = jax.vmap(lambda k: jax.random.split(k, 3))(keys)
        keys, k_init, k_target = split[:, 0], split[:, 1], split[:, 2]
        qpos, qvel = task.initial_state(t, k_init)
        spread = self.config.training_target_spread
        if spread is None:
            target = task.random_targets(k_target, qpos[:, :2], self.config.task)
        else:  # a training aid: the first target near the initial heading
            target = task.random_targets(k_target, qpos[:, :2], self.config.task, task.heading(qpos), spread)
        kin = task.kinematics(t, qpos, qvel)
        obs = task.observe(t, kin, qpos, target)
        b = self.num_envs
        zeros = jnp.zeros(b, qpos.dtype)
        false, ints = jnp.zeros(b, jnp.bool_), jnp.zeros(b, jnp.int32)
        return EnvState(
            qpos=qpos,
            qvel=qvel,
            time=zeros,
            target=target,
            key=keys,
            steps=jnp.zeros(b, jnp.int32),
            episode_return=zeros,
            obs=obs,
            reward=zeros,
            terminated=false,
            truncated=false,
            info=step_info(obs, zeros, ints, ints, false, false, ints),
        )

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        t = self.tables
        dtype = state.qpos.dtype
        action, nonfinite = sanitize_action(action, t.action_mask, dtype)
        if self.config.hinge_action_scale != (1.0, 1.0, 1.0):  # the policy's bound per hinge axis
            action = action * jnp.asarray(self.config.hinge_action_scale, dtype)
        if self.base_gains is not None:  # the policy's action is a residual on the base controller's
            base = lqr.act(self.base_gains, t, state.qpos, state.qvel).astype(dtype)
            residual = self.config.residual_scale * action
            action = jnp.where(t.action_mask, jnp.clip(base + residual, -1.0, 1.0), 0.0)

        b = self.num_envs
        ctrl = jnp.zeros((b, self.sizes.nu + 1), dtype)
        ctrl = ctrl.at[jnp.arange(b)[:, None, None], t.actuator].set(action)[:, : self.sizes.nu]
        qpos, qvel, time, was_reset = self._physics(state.qpos, state.qvel, state.time, ctrl)

        finite_state = jnp.all(jnp.isfinite(qpos), -1) & jnp.all(jnp.isfinite(qvel), -1)
        unstable = was_reset | ~finite_state
        # A diverged row keeps its last state (made finite), so nothing below sees NaN.
        finite = lambda x: jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # noqa: E731
        qpos = jnp.where(unstable[:, None], finite(state.qpos), qpos)
        qvel = jnp.where(unstable[:, None], finite(state.qvel), qvel)
        time = jnp.where(unstable, state.time, time)

        kin = task.kinematics(t, qpos, qvel)
        reward = task.reward(t, state.qpos, qpos, state.target, action)
        violations = task.health_violations(t, kin, qpos, qvel)
        terminated = jnp.any(violations, -1) | unstable
        steps = state.steps + 1
        truncated = (steps >= self.config.episode_length) & ~terminated

        split = jax.vmap(jax.random.split)(state.key)
        keys, k_target = split[:, 0], split[:, 1]
        target, waypoint = state.target, jnp.zeros(b, jnp.bool_)
        if self.config.task == "v2":
            waypoint = jnp.linalg.norm(target - qpos[:, :2], axis=-1) < task.V2_REACHED
            fresh = task.random_targets(k_target, qpos[:, :2], "v2")
            target = jnp.where(waypoint[:, None], fresh, target)

        obs = task.observe(t, kin, qpos, target)
        episode_return = state.episode_return + reward
        reasons = task.end_reasons(violations, unstable)
        info = step_info(obs, episode_return, steps, nonfinite, unstable, waypoint, reasons)
        after = EnvState(
            qpos=qpos,
            qvel=qvel,
            time=time,
            target=target,
            key=keys,
            steps=steps,
            episode_return=episode_return,
            obs=obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            info=info,
        )
        if not self.config.autoreset:
            return after
        return autoreset(after, lambda: self.start_states(keys), EPISODE_FIELDS)


def single_env(body: str, max_limbs: int | None = None, **fields) -> BatchedEnv:
    """One environment of exactly one body, without autoreset (the adapters' view).

    max_limbs defaults to the body's own limb count, so spaces are tight;
    `fields` are further EnvConfig fields (task, backend, episode_length, ...).
    """
    pairs = resolve(body, max_limbs=max_limbs or UNBOUNDED_LIMBS)
    if len(pairs) != 1:
        raise ConfigError(f"body={body!r}: names {len(pairs)} bodies; this environment runs exactly one")
    num_limbs = max_limbs if max_limbs is not None else pairs[0][0].num_limbs
    return BatchedEnv(EnvConfig(bodies=(body,), num_envs=1, max_limbs=num_limbs, autoreset=False, **fields))
