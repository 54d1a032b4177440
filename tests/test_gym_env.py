"""EquirlGymEnv: Gymnasium's env checker, registration, episode ends, NaN actions, rendering."""

import os

# Headless rendering: MuJoCo picks its GL backend when it is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

import functools  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

from equirl.envs.gym_env import EquirlGymEnv, register_envs  # noqa: E402
from equirl.envs.registration import env_id  # noqa: E402
from equirl.errors import ConfigError, EquirlError  # noqa: E402
from equirl.morphology.sgrl import BODY_NAMES  # noqa: E402

BODY_ID = "equirl/hopper_3_shin_waypoints-v0"
EPISODE_LENGTH = 20
ANT_XML = os.path.join(os.path.dirname(gymnasium.__file__), "envs/mujoco/assets/ant.xml")
REFERENCE_XML = Path(__file__).resolve().parents[2] / "shared/sgrl3d/envs/3d_hoppers/3d_hopper_5_full.xml"


@functools.cache
def gl_problem() -> str | None:
    """Why MuJoCo cannot render here, or None if it can."""
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
        renderer = mujoco.Renderer(model, 8, 8)
        renderer.close()
    except Exception as err:  # no EGL/OSMesa/display, or mujoco imported with another MUJOCO_GL
        return f"no OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): {type(err).__name__}: {err}"
    return None


def checked(env: gymnasium.Env) -> None:
    """check_env on the raw environment; fails on any warning it raises about it.

    The observation Boxes are unbounded on purpose (velocities and heights
    have no fixed range), so check_env's advice about infinite bounds is expected.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=gl_problem() is not None)
    messages = [
        str(w.message)
        for w in caught
        if ("gymnasium" in w.filename or "WARN" in str(w.message)) and "infinity" not in str(w.message)
    ]
    assert not messages, messages


@pytest.fixture(scope="module")
def sgrl_env():
    env = gymnasium.make(BODY_ID, episode_length=EPISODE_LENGTH)
    yield env
    env.close()


def test_registration():
    register_envs()  # again: already-registered ids are skipped
    for body in BODY_NAMES:
        for task in ("v1", "v2"):
            spec = gymnasium.spec(env_id(body, task))
            assert spec.kwargs == {"body": body, "task": task}
            assert spec.max_episode_steps is None  # the env truncates itself
    assert gymnasium.spec("equirl/MJCF-v0").kwargs == {"task": "v1"}
    assert gymnasium.spec("equirl/MJCF_waypoints-v0").kwargs == {"task": "v2"}
    assert gymnasium.spec("equirl/walker_7_full-v0").kwargs == {"body": "walker_7_full", "task": "v1"}


def test_bad_arguments():
    with pytest.raises(ConfigError, match="xml_path"):
        gymnasium.make("equirl/MJCF-v0")  # no file given
    with pytest.raises(ConfigError, match="render_mode"):
        EquirlGymEnv("hopper_3_shin", render_mode="human")
    with pytest.raises(ConfigError, match="exactly one"):
        EquirlGymEnv("hopper", max_limbs=16)  # a suite is several bodies


def test_spaces(sgrl_env):
    limbs = 3
    space = sgrl_env.observation_space
    assert space["vectors"].shape == (limbs, 8, 3) and space["scalars"].shape == (limbs, 17)
    assert space["limb_mask"].shape == (limbs,) and space["action_mask"].shape == (limbs, 3)
    assert space["parent"].low.min() == -1 and space["parent"].high.max() == limbs - 1
    assert sgrl_env.action_space == gymnasium.spaces.Box(-1.0, 1.0, (limbs, 3), np.float32)


def test_check_env_sgrl_body(sgrl_env):
    checked(sgrl_env)


@pytest.mark.benchmark  # ~25 s of compiles; check_env on an SGRL body stays in the default suite
def test_check_env_mjcf_ant():
    env = gymnasium.make("equirl/MJCF-v0", xml_path=ANT_XML, episode_length=EPISODE_LENGTH)
    try:
        assert env.observation_space["vectors"].shape == (9, 8, 3)  # torso + 8 leg limbs
        checked(env)
    finally:
        env.close()


@pytest.mark.skipif(not REFERENCE_XML.is_file(), reason=f"reference MJCF not present: {REFERENCE_XML}")
@pytest.mark.benchmark  # ~50 s of compiles; check_env on an SGRL body stays in the default suite
def test_check_env_mjcf_reference():
    env = gymnasium.make("equirl/MJCF-v0", xml_path=str(REFERENCE_XML), episode_length=EPISODE_LENGTH)
    try:
        checked(env)
    finally:
        env.close()


def test_truncates_at_episode_length(sgrl_env):
    obs, info = sgrl_env.reset(seed=1)
    assert info["episode_length"] == 0
    still = np.zeros(sgrl_env.action_space.shape, np.float32)
    for step in range(1, EPISODE_LENGTH + 1):
        obs, reward, terminated, truncated, info = sgrl_env.step(still)
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert not terminated, f"a standing hopper fell at step {step}"
        assert truncated == (step == EPISODE_LENGTH)
        assert info["episode_length"] == step and info["end_reasons"] == ()
        assert obs in sgrl_env.observation_space


def test_terminates_when_it_falls(sgrl_env):
    sgrl_env.reset(seed=2)
    curl = np.full(sgrl_env.action_space.shape, -1.0, np.float32)  # folds the leg: it falls in ~16 steps
    for step in range(1, EPISODE_LENGTH + 1):
        _, _, terminated, truncated, info = sgrl_env.step(curl)
        if terminated:
            break
    assert terminated and not truncated, f"no fall within {EPISODE_LENGTH} steps"
    assert not info["unstable"]
    assert info["end_reasons"] and "unstable" not in info["end_reasons"]  # which health condition it broke


def test_nonfinite_action(sgrl_env):
    sgrl_env.reset(seed=3)
    action = np.zeros(sgrl_env.action_space.shape, np.float32)
    action[1, 0] = np.nan
    action[2, :] = np.inf
    obs, reward, _, _, info = sgrl_env.step(action)
    assert info["nonfinite_actions"] == 4
    assert np.isfinite(reward)
    assert np.all(np.isfinite(obs["vectors"])) and np.all(np.isfinite(obs["scalars"]))
    _, _, _, _, info = sgrl_env.step(np.zeros_like(action))
    assert info["nonfinite_actions"] == 0
    with pytest.raises(EquirlError, match="shape"):
        sgrl_env.step(np.zeros((2, 3), np.float32))


def test_step_before_reset():
    env = EquirlGymEnv("hopper_3_shin")
    try:
        with pytest.raises(EquirlError, match="reset"):
            env.step(np.zeros(env.action_space.shape, np.float32))
    finally:
        env.close()


def test_render_rgb_array():
    if gl_problem() is not None:
        pytest.skip(gl_problem())
    env = gymnasium.make(BODY_ID, render_mode="rgb_array", width=160, height=120)
    try:
        env.reset(seed=0)
        image = env.render()
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1, "the image is one flat colour"
    finally:
        env.close()
        env.close()  # closing twice is allowed
