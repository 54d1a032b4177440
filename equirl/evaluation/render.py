"""Videos of a policy on any body, rendered headless.

    from equirl.evaluation import render_video

    result = render_video("runs/hopper_ppo_set", "walker_3_left_knee_right_knee")
    print(result.path)   # videos/hopper_ppo_set_walker_3_left_knee_right_knee_seed0_return123.mp4

One deterministic episode is simulated in a compiled scan (the same
environment as training and evaluation); its states are then replayed into
`mujoco.Renderer` on the host. The camera tracks the torso from the side (the target to the right), an arrow from the
torso shows the direction to the target, the running return is written on
each frame and the final return goes in the default file name. The video
plays in real time: fps = 1 / (timestep * frame_skip).

Rendering is headless: MuJoCo's EGL context, or OSMesa when EGL cannot be
used; when neither works a `RenderError` names the system packages to install.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import sys
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from equirl.checks import check_float, check_int
from equirl.envs import rollout
from equirl.errors import ConfigError, EquirlError
from equirl.evaluation.evaluate import Policy, as_policy, make_env, plan_body

DEFAULT_DIR = "videos"
_GIF_MAX_FPS = 25  # GIF frame delays are in 1/100 s and players clamp small ones


class RenderError(EquirlError):
    """MuJoCo could not render (no usable OpenGL) or the video could not be written."""


@dataclasses.dataclass
class RenderResult:
    path: Path
    episode_return: float
    length: int
    frames: int
    fps: float
    gif: Path | None = None


# --- headless OpenGL ----------------------------------------------------------------------

_PACKAGES = (
    "EGL: apt-get install libegl1 (with a GPU driver, or Mesa's libegl-mesa0 for software rendering); "
    "OSMesa: apt-get install libosmesa6"
)


def _context_class(backend: str):
    if backend == "egl":
        from mujoco.egl import GLContext
    else:
        from mujoco.osmesa import GLContext
    return GLContext


def _forget_opengl() -> None:
    """Let PyOpenGL be imported again for another platform (after a failed EGL start)."""
    for name in [n for n in sys.modules if n == "OpenGL" or n.startswith("OpenGL.")]:
        del sys.modules[name]
    for name in ("mujoco.egl", "mujoco.egl.egl_ext", "mujoco.osmesa"):
        sys.modules.pop(name, None)


def make_renderer(model, width: int, height: int):
    """A mujoco.Renderer on EGL, falling back to OSMesa (unless MUJOCO_GL asks for something else)."""
    import mujoco
    from mujoco.rendering.classic import gl_context

    requested = os.environ.get("MUJOCO_GL", "").lower().strip()
    if requested not in ("", "egl", "osmesa"):  # glfw, glx, ...: the user chose
        try:
            return mujoco.Renderer(model, height=height, width=width)
        except Exception as err:
            raise RenderError(
                f"could not start MuJoCo rendering with MUJOCO_GL={requested} "
                f"({type(err).__name__}: {err}); for headless rendering set MUJOCO_GL=egl or osmesa"
            ) from None
    order = ["osmesa", "egl"] if requested == "osmesa" else ["egl", "osmesa"]
    failures = []
    for backend in order:
        try:
            if failures:
                _forget_opengl()
                os.environ["PYOPENGL_PLATFORM"] = backend
            # MuJoCo's C side reads MUJOCO_GL when it loads the GL functions: without
            # this, OSMesa after a failed EGL start stops with "gladLoadGL error".
            os.environ["MUJOCO_GL"] = backend
            gl_context.GLContext = _context_class(backend)
            return mujoco.Renderer(model, height=height, width=width)
        except Exception as err:  # missing library, no device, wrong PyOpenGL platform, ...
            failures.append(f"{backend}: {type(err).__name__}: {' '.join(str(err).split())[:160]}")
    raise RenderError(f"could not start headless MuJoCo rendering ({'; '.join(failures)}); install {_PACKAGES}")


# --- the scene ----------------------------------------------------------------------------


def _add_target_arrow(scene, origin: np.ndarray, target_xy: np.ndarray, length: float = 1.0) -> None:
    """An arrow from above the torso toward the target, and a marker at the target when it is near."""
    import mujoco

    if scene.ngeom >= scene.maxgeom - 2:
        return
    direction = np.asarray(target_xy, np.float64) - origin[:2]
    norm = float(np.linalg.norm(direction))
    if norm < 1e-6:
        return
    direction /= norm
    start = np.array([origin[0], origin[1], origin[2] + 0.6])
    end = start + length * np.array([direction[0], direction[1], 0.0])
    geom = scene.geoms[scene.ngeom]
    mujoco.mjv_initGeom(
        geom,
        mujoco.mjtGeom.mjGEOM_ARROW,
        np.zeros(3),
        np.zeros(3),
        np.eye(3).ravel(),
        np.array([0.95, 0.2, 0.1, 0.9], np.float32),
    )
    mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, 0.04, start, end)
    scene.ngeom += 1
    if norm < 15.0:  # a nearby target (waypoints): mark it on the floor
        geom = scene.geoms[scene.ngeom]
        mujoco.mjv_initGeom(
            geom,
            mujoco.mjtGeom.mjGEOM_SPHERE,
            np.array([0.15, 0.15, 0.15]),
            np.array([target_xy[0], target_xy[1], 0.15]),
            np.eye(3).ravel(),
            np.array([0.95, 0.2, 0.1, 0.7], np.float32),
        )
        scene.ngeom += 1


def _overlay(frame: np.ndarray, text: str) -> np.ndarray:
    try:
        from PIL import Image, ImageDraw
    except ImportError:  # no Pillow: no overlay (the return is in the file name)
        return frame
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, image.width, 18), fill=(0, 0, 0))
    draw.text((6, 3), text, fill=(255, 255, 255))
    return np.asarray(image)


# --- the episode --------------------------------------------------------------------------


def _simulate(env, policy: Policy, seed: int):
    """(qpos [T+1, nq], target [T+1, 2], reward [T], done [T]) of one deterministic episode."""
    steps = env.config.episode_length

    def episode(agent_state, key):
        s0 = env.reset(key)

        def record(step):
            s = step.after
            return s.qpos[0], s.target[0], s.reward[0], s.terminated[0] | s.truncated[0]

        acting = rollout.deterministic(lambda obs: policy.act(agent_state, obs))
        _, _, (qpos, target, reward, done) = rollout.unroll(env, s0, acting, key, steps, record)
        return (jnp.concatenate([s0.qpos[:1], qpos]), jnp.concatenate([s0.target[:1], target]), reward, done)

    return jax.device_get(jax.jit(episode)(policy.state, jax.random.PRNGKey(seed)))


def _default_path(policy: Policy, body: str, seed: int, episode_return: float, out_dir: str | os.PathLike) -> Path:
    body_part = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(body).stem if body.endswith(".xml") else body).strip("_")
    return Path(out_dir) / f"{policy.name}_{body_part}_seed{seed}_return{episode_return:.0f}.mp4"


def render_video(
    policy_or_run_dir,
    body: str,
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    step: int | None = None,
    episode_length: int | None = None,
    width: int = 640,
    height: int = 480,
    distance: float = 4.0,
    gif: bool = False,
    out_dir: str | os.PathLike = DEFAULT_DIR,
    overlay: bool = True,
    task: str | None = None,
    max_fps: float = 30.0,
) -> RenderResult:
    """Render one deterministic episode of a policy on `body` (one body: a name, MJCF path or random:1:SEED).

    path: the MP4 to write (default: out_dir/<run>_<body>_seed<seed>_return<R>.mp4);
    gif=True also writes a GIF next to it (at most 25 fps).
    max_fps: every k-th control step is drawn, k the smallest that keeps the video at or under this
    rate; it plays in real time either way. Drawing is the slow part (about 0.17 s a 640x480 frame
    in software), and control runs at 125 steps/s on the hoppers and walkers.
    The episode ends at the first termination or after episode_length steps.
    """
    for name, value in (("width", width), ("height", height)):
        check_int(name, value, 16)
    check_float("max_fps", max_fps, 0.0, open_low=True)
    policy = as_policy(policy_or_run_dir, step)
    max_limbs, rows = plan_body(policy, str(body))
    if len(rows) != 1:
        raise ConfigError(f"{body!r}: names {len(rows)} bodies; a video shows exactly one (e.g. random:1:SEED)")
    if rows[0].error:
        raise ConfigError(f"{rows[0].body}: cannot be controlled by this policy: {rows[0].error}")

    env = make_env(policy, str(body), 1, max_limbs, episode_length=episode_length, task=task, num_threads=1)
    try:
        morph = env.morphologies[0]
        frame_skip = env.config.frame_skip
        qpos, target, reward, done = _simulate(env, policy, seed)
    finally:
        env.close()
    ended = np.flatnonzero(done)
    length = int(ended[0]) + 1 if ended.size else len(done)
    returns = np.concatenate([[0.0], np.cumsum(np.asarray(reward[:length], np.float64))])
    episode_return = float(returns[-1])
    control_fps = 1.0 / (morph.timestep * frame_skip)
    stride = max(1, int(np.ceil(control_fps / max_fps - 1e-9)))
    fps = control_fps / stride

    path = Path(path) if path is not None else _default_path(policy, str(body), seed, episode_return, out_dir)
    if path.suffix.lower() != ".mp4":
        path = path.with_suffix(path.suffix + ".mp4") if path.suffix.lower() != ".gif" else path.with_suffix(".mp4")
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = np.arange(0, length + 1, stride)
    frames = _render_frames(
        morph, qpos[shown], target[shown], returns[shown], shown, width, height, distance, overlay, rows[0].body
    )
    _write_mp4(path, frames, fps)
    gif_path = None
    if gif:
        gif_path = path.with_suffix(".gif")
        _write_gif(gif_path, frames, fps)
    return RenderResult(
        path=path, episode_return=episode_return, length=length, frames=len(frames), fps=fps, gif=gif_path
    )


def _render_frames(morph, qpos, target, returns, steps, width, height, distance, overlay, name) -> list[np.ndarray]:
    import mujoco

    model = copy.deepcopy(morph.model)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    data = mujoco.MjData(model)
    renderer = make_renderer(model, width, height)
    try:
        camera = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, camera)
        camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        torso = int(morph.tree.body_id[0])
        camera.trackbodyid = torso
        camera.distance = distance
        camera.elevation = -20.0
        # Side-on to the target direction: the target lies to the right of the screen.
        data.qpos[:] = qpos[0][: model.nq]
        mujoco.mj_forward(model, data)
        heading = np.asarray(target[0], np.float64) - data.xpos[torso][:2]
        camera.azimuth = float(np.degrees(np.arctan2(heading[1], heading[0]))) + 90.0
        frames = []
        for t in range(len(qpos)):
            data.qpos[:] = qpos[t][: model.nq]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            _add_target_arrow(renderer.scene, np.array(data.xpos[torso]), np.asarray(target[t], np.float64))
            frame = renderer.render().copy()
            if overlay:
                frame = _overlay(frame, f"{name}  step {steps[t]}  return {returns[t]:.1f}")
            frames.append(frame)
        return frames
    finally:
        renderer.close()


def _write_mp4(path: Path, frames, fps: float) -> None:
    try:
        import imageio.v2 as imageio

        # imageio starts ffmpeg with subprocess (fork + exec), and JAX warns at every fork that a
        # forked child of a threaded process may deadlock. The child execs ffmpeg at once and runs
        # no Python or JAX code, so that cannot happen here: the warning is silenced for this call.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            with imageio.get_writer(
                str(path), fps=fps, codec="libx264", quality=7, macro_block_size=1, ffmpeg_log_level="error"
            ) as writer:
                for frame in frames:
                    writer.append_data(frame)
    except EquirlError:
        raise
    except Exception as err:
        raise RenderError(
            f"{path}: could not write the video ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:200]}); imageio[ffmpeg] is needed"
        ) from None


def _write_gif(path: Path, frames, fps: float) -> None:
    import imageio.v2 as imageio

    stride = max(1, int(np.ceil(fps / _GIF_MAX_FPS)))
    imageio.mimsave(str(path), frames[::stride], duration=1000.0 * stride / fps, loop=0)
