"""Typed, validated configuration of a batched environment."""

from __future__ import annotations

import dataclasses
import math
import os

from equirl.checks import check_float, check_int
from equirl.errors import ConfigError

TASKS = ("v1", "v2")
BACKENDS = ("auto", "native", "mjx")
TORSO_DAMPING_AXES = ("all", "roll", "planar")  # every axis, the heading only, or all out of the plane
BASE_CONTROLLERS = (None, "lqr")  # equirl.envs.lqr.NAME


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """What to simulate and how.

    bodies: each entry is a 3D-SGRL body name (e.g. "walker_7_full"), a suite
      name ("hopper", "CWHH", ...), a path to an MJCF file, or
      "random:COUNT:SEED" for procedurally generated bodies.
    num_envs: environments stepped together; they are spread over the bodies
      round-robin, so a batch mixes morphologies.
    task: "v1" walks toward a fixed far direction, "v2" follows waypoints.
    backend: "native" (MuJoCo's C engine, threaded), "mjx" (pure JAX), or
      "auto" (mjx on a GPU/TPU, native on a CPU).
    max_limbs: observations and actions are padded to this many limbs; a body
      with more limbs is rejected.
    training_tilt_limit: a training aid, not the task. An episode also ends
      when the torso tilts from vertical (hoppers) or pitches or rolls
      (walkers, humanoids, cheetahs) past this many radians, if that is
      tighter than the published limit (1 rad; cheetah 1.35). Falling then
      ends before the lean toward the target has paid. None: the published
      limits. `equirl eval` always measures on the published task.
    training_progress_weight: a training aid, not the task: the reward's two
      progress terms are multiplied by it (0: alive bonus minus control cost
      only, a reward for staying up). 1: the published reward.
    training_tilt_penalty: a training aid, not the task: this weight times
      1 - cos of the torso's tilt from vertical (about tilt^2 / 2) is taken off
      every reward, the orientation term of legged-robot rewards. A lean then
      costs as it grows, not only when it ends in a fall hundreds of steps later,
      beyond the critic's discounted horizon. 0: the published reward.
    training_target_spread: a training aid, not the task: the first target of
      each episode lies within this many radians of the torso's initial heading
      (0: straight ahead, as in the planar benchmarks) instead of in a uniformly
      random direction. None: the published task (any direction, pi).
    training_torso_damping: a training aid, not the task: this much damping
      (N m s / rad) on the torso's rotation about every axis, which slows every
      fall alike (`equirl.envs.torso_damping`). 0: the published physics.
    training_torso_damping_axes: where the damping acts. "all" (the default):
      the torso's rotation about every axis. "roll": only about the torso's own
      x axis, its heading, so sideways falls are slowed and the pitch a hop
      needs is left free. "planar": the torso's roll and yaw and every side
      hinge (axis off the pitch axis at the start pose), each scaled by its own
      inertia, the nearest to a planar body (as the planar benchmarks' hoppers
      are) that the free root allows. MuJoCo integrates these bodies with RK4,
      which treats damping explicitly: the hoppers stay stable at 200–250 and
      go unstable at 500 (roll) and 1,000 (planar).
    training_torso_damping_steps: the damping fades linearly to zero over this
      many environment steps of training (0: it stays). A fade needs the native
      backend (MJX fixes the model when the environment is built).
    base_controller: None, or "lqr": the policy acts as a residual on a scripted
      controller (see residual_scale for how the two add up);
      "lqr" is the standing balance controller of `equirl.envs.lqr` (one gain
      per body, from the body's own MuJoCo model). Part of the controller, not
      a training aid: `equirl eval` keeps it.
    residual_scale: with a base controller, each step the motors get
      clip(base(state) + residual_scale * action, -1, 1). Below 1 the learner's
      exploration (uniform warm-up, a wide initial sigma) cannot knock the body
      off balance; part of the controller, like base_controller.
    hinge_action_scale: the policy's action on each limb's x, y and z hinge is
      multiplied by these before it reaches the motors (and the control
      cost), so the policy's range on a hinge is this fraction of its motor's.
      Part of the controller (`equirl eval` keeps it), an action bound: the
      hoppers' x and z hinges turn only +-10 degrees yet have the pitch
      hinges' gear of 200, and at full range the early, noisy policy kicks the
      body sideways with them. (1, 1, 1): the published action space. The
      policy stays mirror-equivariant while a body's mirror keeps each hinge in
      its slot (every SGRL body) or the slots it exchanges share one scale.
    """

    bodies: tuple[str, ...] = ("hopper_5_full",)
    num_envs: int = 8
    task: str = "v1"
    backend: str = "auto"
    max_limbs: int = 16
    episode_length: int = 1000
    frame_skip: int = 4
    autoreset: bool = True
    # Elliptic friction cones are isotropic, so the physics is exactly
    # invariant to rotations about gravity; pyramidal cones are not. False: the
    # published physics (3D-SGRL bodies by name get the published pyramidal
    # cones, MJCF files keep theirs, condim-1 geoms stay frictionless).
    isotropic_friction: bool = True
    num_threads: int | None = None  # native backend; None: every core we may use
    training_tilt_limit: float | None = None
    training_progress_weight: float = 1.0
    training_tilt_penalty: float = 0.0
    training_target_spread: float | None = None
    training_torso_damping: float = 0.0
    training_torso_damping_steps: int = 0
    training_torso_damping_axes: str = "all"
    base_controller: str | None = None
    residual_scale: float = 1.0
    hinge_action_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    hinge_position_control: tuple[bool, bool, bool] = (False, False, False)
    position_gain: float = 5.0
    position_damping: float = 0.05

    def __post_init__(self):
        if isinstance(self.bodies, str):
            object.__setattr__(self, "bodies", (self.bodies,))
        else:
            object.__setattr__(self, "bodies", tuple(self.bodies))
        self.validate()

    def validate(self) -> None:
        if not self.bodies:
            raise ConfigError("bodies: at least one body is needed")
        for name, value, low in (
            ("num_envs", self.num_envs, 1),
            ("max_limbs", self.max_limbs, 1),
            ("episode_length", self.episode_length, 1),
            ("frame_skip", self.frame_skip, 1),
        ):
            check_int(name, value, low)
        if self.task not in TASKS:
            raise ConfigError(f"task={self.task!r}: must be one of {TASKS}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend={self.backend!r}: must be one of {BACKENDS}")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise ConfigError(f"num_threads={self.num_threads!r}: must be None or an integer >= 1")
        limit = self.training_tilt_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 < limit):
            raise ConfigError(f"training_tilt_limit={limit!r}: must be None or a positive angle in radians")
        check_float("training_progress_weight", self.training_progress_weight, 0.0)
        check_float("training_tilt_penalty", self.training_tilt_penalty, 0.0)
        spread = self.training_target_spread
        if spread is not None and (
            isinstance(spread, bool) or not isinstance(spread, (int, float)) or not 0 <= spread <= math.pi
        ):
            raise ConfigError(f"training_target_spread={spread!r}: must be None or an angle in [0, pi] radians")
        check_float("training_torso_damping", self.training_torso_damping, 0.0)
        check_int("training_torso_damping_steps", self.training_torso_damping_steps, 0)
        if self.training_torso_damping_axes not in TORSO_DAMPING_AXES:
            raise ConfigError(
                f"training_torso_damping_axes={self.training_torso_damping_axes!r}: "
                f"must be one of {', '.join(TORSO_DAMPING_AXES)}"
            )
        if self.training_torso_damping_steps and not self.training_torso_damping:
            raise ConfigError(
                f"training_torso_damping_steps={self.training_torso_damping_steps}: "
                "only applies with a training_torso_damping above 0"
            )
        if self.training_torso_damping_steps and self.backend == "mjx":
            raise ConfigError(
                "training_torso_damping_steps: fading the damping needs the native backend "
                "(MJX fixes the model when the environment is built); use backend native or a constant damping"
            )
        if self.base_controller not in BASE_CONTROLLERS:
            raise ConfigError(f"base_controller={self.base_controller!r}: must be one of {BASE_CONTROLLERS}")
        check_float("residual_scale", self.residual_scale, 0.0, open_low=True)
        if self.residual_scale != 1.0 and self.base_controller is None:
            raise ConfigError(f"residual_scale={self.residual_scale!r}: only applies with a base_controller")
        scale = self.hinge_action_scale
        if (
            not isinstance(scale, tuple)
            or len(scale) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1 for v in scale)
        ):
            raise ConfigError(
                f"hinge_action_scale={scale!r}: must be three numbers in (0, 1], for the x, y and z hinges"
            )
        servo = self.hinge_position_control
        if not isinstance(servo, tuple) or len(servo) != 3 or not all(isinstance(v, bool) for v in servo):
            raise ConfigError(f"hinge_position_control={servo!r}: must be three booleans, for the x, y and z hinges")
        check_float("position_gain", self.position_gain, 0.0, open_low=True)
        check_float("position_damping", self.position_damping, 0.0)
        if any(servo) and self.base_controller is not None:
            raise ConfigError(
                f"hinge_position_control={servo!r}: the base controller {self.base_controller!r} "
                "computes torques; use one or the other"
            )

    def without_training_aids(self) -> EnvConfig:
        """This config on the published task: every training_* aid back at its default."""
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name.startswith("training_")}
        return dataclasses.replace(self, **defaults)

    def resolved_backend(self) -> str:
        if self.backend != "auto":
            return self.backend
        import jax

        return "native" if jax.default_backend() == "cpu" else "mjx"

    def resolved_threads(self) -> int:
        if self.num_threads is not None:
            return self.num_threads
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1
