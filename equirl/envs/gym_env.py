"""A Gymnasium view of one equirl environment.

`EquirlGymEnv` wraps a single-environment `BatchedEnv` (no autoreset: the
caller resets, as Gymnasium expects) and converts between JAX arrays and the
NumPy values Gymnasium's API promises. Observations stay per-limb: a dict of
the `Observation` fields with the batch dimension dropped.

Ids (registered on `import equirl`, see equirl/envs/registration.py):
`equirl/<body>-v0` (task v1) and `equirl/<body>_waypoints-v0` (task v2) for
every 3D-SGRL body, and `equirl/MJCF-v0` / `equirl/MJCF_waypoints-v0` for any
MJCF file: `gymnasium.make("equirl/MJCF-v0", xml_path=...)`.
"""

from __future__ import annotations

import copy

import gymnasium
import jax
import numpy as np
from gymnasium import spaces

from equirl.envs.batched import EnvState, single_env
from equirl.envs.registration import register_envs
from equirl.envs.task import reason_names
from equirl.errors import ConfigError, EquirlError
from equirl.observation import NUM_SCALARS, NUM_VECTORS

RENDER_MODES = ("rgb_array",)


def observation_space(num_limbs: int) -> spaces.Dict:
    """Per-limb observation space; dtypes match what `EquirlGymEnv` returns exactly."""
    inf = np.float32(np.inf)
    return spaces.Dict(
        {
            "vectors": spaces.Box(-inf, inf, (num_limbs, NUM_VECTORS, 3), np.float32),
            "scalars": spaces.Box(-inf, inf, (num_limbs, NUM_SCALARS), np.float32),
            "limb_mask": spaces.MultiBinary(num_limbs),  # int8
            "parent": spaces.Box(-1, num_limbs - 1, (num_limbs,), np.int64),
            "action_mask": spaces.MultiBinary((num_limbs, 3)),  # int8
        }
    )


class EquirlGymEnv(gymnasium.Env):
    """One body, one environment, Gymnasium's reset/step/render API.

    body (or its alias xml_path): a 3D-SGRL body name, an MJCF path or
      "random:1:SEED". task: "v1" or "v2". max_limbs: pad observations and
      actions to this many limbs (default: the body's own count).
    The episode truncates itself after `episode_length` steps.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 30}

    def __init__(
        self,
        body: str | None = None,
        *,
        xml_path: str | None = None,
        task: str = "v1",
        max_limbs: int | None = None,
        episode_length: int = 1000,
        backend: str = "native",
        frame_skip: int = 4,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
    ):
        if (body is None) == (xml_path is None):
            raise ConfigError("give exactly one of body= or xml_path=")
        body = str(body if body is not None else xml_path)
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ConfigError(f"render_mode={render_mode!r}: must be None or one of {RENDER_MODES}")
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: must be a positive integer")

        self.batched = single_env(
            body,
            max_limbs,
            task=task,
            backend=backend,
            episode_length=episode_length,
            frame_skip=frame_skip,
            num_threads=1,  # one environment: the calling thread is enough
        )
        morph, num_limbs = self.batched.morphologies[0], self.batched.num_limbs
        self.morphology = self.batched.morphologies[0]
        self.render_mode = render_mode
        self.width, self.height = width, height
        self.metadata = {**self.metadata, "render_fps": max(1, round(1.0 / (morph.timestep * frame_skip)))}

        self.observation_space = observation_space(num_limbs)
        self.action_space = spaces.Box(-1.0, 1.0, (num_limbs, 3), np.float32)

        # Compiled once per instance. The reset key is built inside from two
        # 32-bit words drawn from Gymnasium's np_random (64 bits of seed).
        self._reset_fn = jax.jit(lambda hi, lo: self.batched.reset(jax.random.fold_in(jax.random.PRNGKey(hi), lo)))
        self._step_fn = jax.jit(self.batched.step)
        self._state: EnvState | None = None
        self._renderer = None
        self._render_data = None
        self._camera = None

    # -- Gymnasium API ----------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        hi, lo = self.np_random.integers(0, 2**32, size=2, dtype=np.uint32)
        self._state = self._reset_fn(hi, lo)
        obs, _, _, _, info = self._unpack(self._state)
        return obs, info

    def step(self, action):
        if self._state is None:
            raise EquirlError("step() before reset(): call reset() first")
        action = np.asarray(action, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise EquirlError(f"action of shape {action.shape}: expected {self.action_space.shape}")
        self._state = self._step_fn(self._state, action[None])
        return self._unpack(self._state)

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() without a render_mode: pass render_mode='rgb_array' to the constructor")
            return None
        if self._state is None:
            raise EquirlError("render() before reset(): call reset() first")
        if self._renderer is None:
            self._start_renderer()
        import mujoco

        model, data = self._render_data
        qpos, qvel = jax.device_get((self._state.qpos[0], self._state.qvel[0]))
        data.qpos[:] = qpos[: model.nq]
        data.qvel[:] = qvel[: model.nv]
        mujoco.mj_forward(model, data)
        self._renderer.update_scene(data, camera=self._camera)
        return self._renderer.render().copy()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if getattr(self, "batched", None) is not None:
            self.batched.close()  # idempotent
        super().close()

    # -- helpers ----------------------------------------------------------------

    def _unpack(self, state: EnvState):
        """Host copies of the (only) environment's observation, reward, flags and info."""
        obs, reward, terminated, truncated, info = jax.device_get(
            (state.obs, state.reward, state.terminated, state.truncated, state.info)
        )
        observation = {
            "vectors": np.asarray(obs.vectors[0], np.float32),
            "scalars": np.asarray(obs.scalars[0], np.float32),
            "limb_mask": np.asarray(obs.limb_mask[0], np.int8),
            "parent": np.asarray(obs.parent[0], np.int64),
            "action_mask": np.asarray(obs.action_mask[0], np.int8),
        }
        host_info = {
            "episode_return": float(info["episode_return"][0]),
            "episode_length": int(info["episode_length"][0]),
            "nonfinite_actions": int(info["nonfinite_actions"][0]),
            "unstable": bool(info["unstable"][0]),
            "waypoint_reached": bool(info["waypoint_reached"][0]),
            "end_reasons": reason_names(info["end_reasons"][0]),  # why it ended; () while it goes on
        }
        return observation, float(reward[0]), bool(terminated[0]), bool(truncated[0]), host_info

    def _start_renderer(self) -> None:
        """An offscreen renderer on a private copy of the body's model."""
        try:
            import mujoco

            model = copy.deepcopy(self.morphology.model)
            # The offscreen buffer must hold the requested image.
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
            renderer = mujoco.Renderer(model, height=self.height, width=self.width)
        except Exception as err:  # no display, no EGL/OSMesa, ...
            raise EquirlError(
                f"could not start MuJoCo rendering ({type(err).__name__}: {err}); on a headless machine set "
                "MUJOCO_GL=egl (or osmesa) before mujoco is first imported"
            ) from err
        camera = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, camera)
        camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        camera.trackbodyid = int(self.morphology.tree.body_id[0])  # the torso
        camera.distance = 4.0
        camera.elevation = -20.0
        camera.azimuth = 90.0
        self._renderer, self._render_data, self._camera = renderer, (model, mujoco.MjData(model)), camera


register_envs()  # importing this module directly also registers the ids
