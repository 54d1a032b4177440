"""A world model behind the batched environment interface: PPO can train in imagination.

`ImaginedEnv` has what the agents use of `equirl.envs.batched.BatchedEnv`
(reset, step, num_envs, num_limbs, action_shape, body_of_env, morphologies,
body_names, close) and returns states with the same fields (obs, reward,
terminated, truncated, info with final_obs, episode_return, episode_length).
Its step asks a `Dynamics` for the next observation instead of the physics.

Reward and termination come from the task's own functions
(`equirl.envs.task.reward`, `task.health_violations`). They need generalised
coordinates, and the observation determines them except for the torso's
horizontal position: `recover_state` reads hinge angles from the scalars,
the torso height from its height scalar, the torso orientation by aligning
the body's own forward kinematics with the observed limb positions and hinge
axes (Kabsch), the root velocity from the torso's vectors and hinge speeds
from the angular velocities of each limb and its parent. The torso's xy is
carried in the state and moved by the dynamics' predicted displacement.
For an observation of a real state this recovers qpos and qvel to float
rounding, so an exact model gives exactly the physics environment's rewards
and terminations (tests/test_wm_env.py).

Episodes start from real start states (the task's own reset draws), and end
as they do in the physics environment: termination, the time limit, or a
prediction that is not finite.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from equirl.envs import task
from equirl.envs.batched import EPISODE_FIELDS, BatchedEnv, autoreset, sanitize_action, select_rows, step_info
from equirl.envs.tables import EnvTables
from equirl.errors import ConfigError
from equirl.geometry import mat_to_quat
from equirl.observation import (
    ANGLE_SCALARS,
    ANGULAR_VELOCITY_CHANNEL,
    HEIGHT_SCALAR,
    HINGE_AXES,
    LINEAR_VELOCITY_CHANNEL,
    POSITION_CHANNEL,
    TARGET_CHANNEL,
    Observation,
)
from equirl.worldmodels.interface import Sequence, WorldModel

TORSO = 0  # limb 0 is the torso (the root body) in every limb graph
POSITION, TARGET_DIRECTION = POSITION_CHANNEL, TARGET_CHANNEL
LINEAR_VELOCITY, ANGULAR_VELOCITY = LINEAR_VELOCITY_CHANNEL, ANGULAR_VELOCITY_CHANNEL


# --- from an observation back to generalised coordinates -----------------------


def _scatter(index: jax.Array, valid: jax.Array, values: jax.Array, size: int) -> jax.Array:
    """[B, size] zeros with values[B, ...] written at index[B, ...] where valid."""
    b = values.shape[0]
    slot = jnp.where(valid, index, size).reshape(b, -1)  # invalid entries go to a dump column
    out = jnp.zeros((b, size + 1), values.dtype).at[jnp.arange(b)[:, None], slot].set(values.reshape(b, -1))
    return out[:, :size]


def torso_rotation(tables: EnvTables, obs: Observation, qpos_joints: jax.Array) -> jax.Array:
    """[B, 3, 3] torso orientation that best maps the body frame onto the observation.

    Forward kinematics with the torso at the origin, unrotated, and the
    observed hinge angles gives every limb's position and hinge axes in the
    torso frame; the observation has them in the world frame. The rotation
    between the two point sets (Kabsch, determinant forced to +1) is unique
    as soon as they span two directions, which a body with a hinge always
    does (a hinge axis and a limb offset, or two offsets).
    """
    b = qpos_joints.shape[0]
    nv = tables.qvel_valid.shape[-1]
    kin = task.kinematics(tables, qpos_joints.at[:, 3].set(1.0), jnp.zeros((b, nv), qpos_joints.dtype))
    index = tables.limb_body[..., None]
    body_pos = jnp.take_along_axis(kin.xpos, index, 1)
    body_axes = jnp.take_along_axis(kin.joint_axis, index[..., None], 1)
    mask = tables.limb_mask[..., None]
    src = jnp.concatenate([body_pos * mask, (body_axes * mask[..., None]).reshape(b, -1, 3)], 1)
    world = obs.vectors
    world_axes = (world[:, :, HINGE_AXES] * mask[..., None]).reshape(b, -1, 3)
    dst = jnp.concatenate([world[:, :, POSITION] * mask, world_axes], 1)
    u, _, vt = jnp.linalg.svd(jnp.einsum("bni,bnj->bij", dst, src))
    proper = jnp.sign(jnp.linalg.det(u @ vt))
    signs = jnp.stack([jnp.ones_like(proper), jnp.ones_like(proper), proper], -1)
    return u @ (signs[..., None] * vt)


def hinge_speeds(tables: EnvTables, obs: Observation) -> jax.Array:
    """[B, L, 3] joint speeds: a limb spins as its parent plus sum_k speed_k * axis_k.

    Solved per limb by least squares over its (up to three) world-frame hinge
    axes; exact when the observation is.
    """
    omega = obs.vectors[:, :, ANGULAR_VELOCITY]
    parent_omega = jnp.take_along_axis(omega, jnp.maximum(tables.parent, 0)[..., None], 1)
    valid = tables.hinge_valid
    axes = obs.vectors[:, :, HINGE_AXES] * valid[..., None]
    normal = jnp.einsum("blhx,blkx->blhk", axes, axes) + jnp.eye(3) * (~valid)[..., None, :]
    rhs = jnp.einsum("blhx,blx->blh", axes, omega - parent_omega)
    return jnp.linalg.solve(normal, rhs[..., None])[..., 0] * valid


def recover_state(tables: EnvTables, obs: Observation, torso_xy: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(qpos [B, nq], qvel [B, nv]) that produce `obs`, with the torso at `torso_xy` [B, 2].

    The root's linear velocity is the observed one, which the task clips at
    task.VELOCITY_CLIP m/s: beyond that speed it is recovered clipped.
    """
    nq, nv = tables.qpos_valid.shape[-1], tables.qvel_valid.shape[-1]
    valid = tables.hinge_valid
    angles = jnp.where(valid, obs.scalars[..., ANGLE_SCALARS], 0.0)
    joints = _scatter(tables.hinge_qposadr, valid, angles, nq)
    rot = torso_rotation(tables, obs, joints)
    qpos = (
        joints.at[:, 0:2]
        .set(torso_xy)
        .at[:, 2]
        .set(obs.scalars[:, TORSO, HEIGHT_SCALAR])
        .at[:, 3:7]
        .set(mat_to_quat(rot))
    )
    qvel = _scatter(tables.hinge_dofadr, valid, hinge_speeds(tables, obs), nv)
    spin = jnp.einsum("bji,bj->bi", rot, obs.vectors[:, TORSO, ANGULAR_VELOCITY])  # body frame, as MuJoCo stores it
    qvel = qvel.at[:, 0:3].set(obs.vectors[:, TORSO, LINEAR_VELOCITY]).at[:, 3:6].set(spin)
    return qpos, qvel


# --- what advances the imagined environment -------------------------------------


class Dynamics(NamedTuple):
    """The imagined environment's physics: pure, jit-able functions over a batch.

    start(obs, qpos, qvel) -> carry: the carry of episodes beginning at these
      real start states (every row; the environment keeps the rows it needs).
    step(carry, obs, action) -> (carry, next_obs, displacement): `obs` is the
      environment's current observation (the carry may already hold it), action
      the clipped, masked torques [B, L, 3]. next_obs is the predicted
      Observation (a non-finite one ends the episode as unstable);
      displacement [B, 2] the torso's horizontal move over the step.
    """

    start: Callable[[Observation, jax.Array, jax.Array], Any]
    step: Callable[[Any, Observation, jax.Array], tuple[Any, Observation, jax.Array]]


@struct.dataclass
class ImaginedState:
    """EnvState's fields (qpos and qvel recovered from the predicted observation) plus the dynamics' carry."""

    qpos: jax.Array  # [B, nq]
    qvel: jax.Array  # [B, nv]
    time: jax.Array  # [B]
    target: jax.Array  # [B, 2]
    key: jax.Array  # [B, 2]
    steps: jax.Array  # [B]
    episode_return: jax.Array  # [B]
    obs: Observation
    reward: jax.Array  # [B]
    terminated: jax.Array  # [B] bool
    truncated: jax.Array  # [B] bool
    info: dict
    model: Any  # the dynamics' carry


def _finite(x: jax.Array) -> jax.Array:
    return jnp.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def _all_finite(obs: Observation) -> jax.Array:
    return jnp.all(jnp.isfinite(obs.vectors), (-3, -2, -1)) & jnp.all(jnp.isfinite(obs.scalars), (-2, -1))


class ImaginedEnv:
    """`env`'s task, bodies and episodes, with `dynamics` in place of its physics.

    env supplies the bodies' tables (for start states, state recovery, reward
    and termination) and its config (task, episode_length, autoreset); this
    class never steps its physics (only `physics_dynamics` does, on purpose).
    Closing this closes env.
    """

    def __init__(self, env: BatchedEnv, dynamics: Dynamics):
        if not isinstance(env, BatchedEnv):
            raise ConfigError(f"env: expected a BatchedEnv, got {type(env).__name__}")
        if not isinstance(dynamics, Dynamics):
            raise ConfigError(f"dynamics: expected a Dynamics, got {type(dynamics).__name__}")
        self.env = env
        self.dynamics = dynamics
        self.config = env.config
        self.tables = env.tables
        self.morphologies = env.morphologies
        self.body_of_env = env.body_of_env
        self.sizes = env.sizes
        # The agents split environments over the wrapped env's device mesh, if it has one.
        self.mesh = getattr(env, "mesh", None)

    num_envs = property(lambda self: self.env.num_envs)
    num_limbs = property(lambda self: self.env.num_limbs)
    action_shape = property(lambda self: self.env.action_shape)
    body_names = property(lambda self: self.env.body_names)

    def close(self) -> None:
        self.env.close()

    # -- episodes ---------------------------------------------------------------

    def start_states(self, keys: jax.Array) -> ImaginedState:
        """Real start states, drawn by the physics environment itself, and the dynamics' carry from them."""
        start = self.env.start_states(keys)
        fields = {f.name: getattr(start, f.name) for f in dataclasses.fields(start)}
        return ImaginedState(**fields, model=self.dynamics.start(start.obs, start.qpos, start.qvel))

    def reset(self, key: jax.Array) -> ImaginedState:
        return self.start_states(jax.random.split(key, self.num_envs))

    def _task_observation(self, predicted: Observation, torso_xy: jax.Array, target: jax.Array) -> Observation:
        """The prediction with what belongs to the task, not the dynamics, set from it:
        the limb structure, the target direction, zero padding."""
        t = self.tables
        to_target = jnp.concatenate([target - torso_xy, jnp.zeros_like(target[:, :1])], -1)
        direction = jnp.broadcast_to(task._safe_unit(to_target)[:, None], predicted.vectors[:, :, 0].shape)
        vectors = predicted.vectors.at[:, :, TARGET_DIRECTION].set(direction)
        return Observation(
            vectors=jnp.where(t.limb_mask[..., None, None], vectors, 0.0),
            scalars=jnp.where(t.limb_mask[..., None], predicted.scalars, 0.0),
            limb_mask=t.limb_mask,
            parent=t.parent,
            action_mask=t.action_mask,
        )

    def step(self, state: ImaginedState, action: jax.Array) -> ImaginedState:
        t = self.tables
        dtype = state.qpos.dtype
        action, nonfinite = sanitize_action(action, t.action_mask, dtype)

        model, predicted, displacement = self.dynamics.step(state.model, state.obs, action)
        unstable = ~(_all_finite(predicted) & jnp.all(jnp.isfinite(displacement), -1))
        # A diverged prediction keeps the last observation, so nothing below sees NaN.
        predicted = select_rows(unstable, state.obs, jax.tree.map(_finite, predicted))
        torso_xy = state.qpos[:, :2] + jnp.where(unstable[:, None], 0.0, displacement)

        target = state.target
        qpos, qvel = recover_state(t, self._task_observation(predicted, torso_xy, target), torso_xy)
        kin = task.kinematics(t, qpos, qvel)
        reward = task.reward(t, state.qpos, qpos, target, action)
        violations = task.health_violations(t, kin, qpos, qvel)
        terminated = jnp.any(violations, -1) | unstable
        steps = state.steps + 1
        truncated = (steps >= self.config.episode_length) & ~terminated

        split = jax.vmap(jax.random.split)(state.key)
        keys, k_target = split[:, 0], split[:, 1]
        waypoint = jnp.zeros(self.num_envs, jnp.bool_)
        if self.config.task == "v2":
            waypoint = jnp.linalg.norm(target - qpos[:, :2], axis=-1) < task.V2_REACHED
            target = jnp.where(waypoint[:, None], task.random_targets(k_target, qpos[:, :2], "v2"), target)

        obs = self._task_observation(predicted, torso_xy, target)
        time = state.time + t.dt
        episode_return = state.episode_return + reward
        after = ImaginedState(
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
            info=step_info(
                obs, episode_return, steps, nonfinite, unstable, waypoint, task.end_reasons(violations, unstable)
            ),
            model=model,
        )
        if not self.config.autoreset:
            return after
        return autoreset(after, lambda: self.start_states(keys), EPISODE_FIELDS + ("model",))


# --- the physics as a Dynamics: the exact model -----------------------------------


class PhysicsCarry(NamedTuple):
    qpos: jax.Array
    qvel: jax.Array
    time: jax.Array


def physics_dynamics(env: BatchedEnv) -> Dynamics:
    """env's own physics as a Dynamics: the model with zero error.

    A reference: the imagined environment driven by it must reproduce env
    step for step, and it bounds what any learned model can reach. A step the
    simulator rejects comes back as a non-finite observation (unstable).
    """
    t = env.tables

    def start(obs, qpos, qvel):
        return PhysicsCarry(qpos, qvel, jnp.zeros(qpos.shape[:1], qpos.dtype))

    def step(carry, obs, action):
        b = carry.qpos.shape[0]
        ctrl = jnp.zeros((b, env.sizes.nu + 1), carry.qpos.dtype)
        ctrl = ctrl.at[jnp.arange(b)[:, None, None], t.actuator].set(action)[:, : env.sizes.nu]
        qpos, qvel, time, was_reset = env.backend.step(carry.qpos, carry.qvel, carry.time, ctrl)
        # Any target gives the same observation once the task sets the target direction.
        target = qpos[:, :2] + obs.vectors[:, TORSO, TARGET_DIRECTION, :2]
        next_obs = task.observe(t, task.kinematics(t, qpos, qvel), qpos, target)
        bad = was_reset | ~(jnp.all(jnp.isfinite(qpos), -1) & jnp.all(jnp.isfinite(qvel), -1))
        next_obs = next_obs.replace(vectors=jnp.where(bad[:, None, None, None], jnp.nan, next_obs.vectors))
        return PhysicsCarry(qpos, qvel, time), next_obs, qpos[:, :2] - carry.qpos[:, :2]

    return Dynamics(start=start, step=step)


# --- a trained world model as a Dynamics ------------------------------------------------


class ModelCarry(NamedTuple):
    model: Any  # the world model's own carry
    torso_position: jax.Array  # [B, 3] its last predicted (or observed) torso position


def world_model_dynamics(model: WorldModel, params: Any, body: jax.Array | None = None) -> Dynamics:
    """Any `WorldModel` (equirl.worldmodels.interface) as a Dynamics, through observe and step.

    An episode's context is its start frame; every step is the model's open-loop
    prediction (its carry holds its own predictions), and the torso displacement
    is the change of its predicted torso position. The model's observations must
    have the environment's limb slots. body [B] is the dataset body index of each
    environment, for models that read it (zeros if None).
    """

    def start(obs, qpos, qvel):
        del qvel
        b = qpos.shape[0]
        index = jnp.zeros(b, jnp.int32) if body is None else jnp.asarray(body, jnp.int32)
        context = Sequence(
            obs=jax.tree.map(lambda x: x[:, None], obs),
            actions=jnp.zeros((b, 1) + obs.action_mask.shape[1:], obs.vectors.dtype),
            torso_position=qpos[:, None, :3],
            body=index,
        )
        return ModelCarry(model.observe(params, context), qpos[:, :3])

    def step(carry, obs, action):
        del obs  # open loop: the model goes on from its own predictions
        frame, inner = model.step(params, carry.model, action)
        move = frame.torso_position[:, :2] - carry.torso_position[:, :2]
        return ModelCarry(inner, frame.torso_position), frame.obs, move

    return Dynamics(start=start, step=step)
