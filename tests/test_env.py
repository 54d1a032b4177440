"""The batched 3D-SGRL task: observations, actions, rewards, episode ends, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from equirl.envs import rollout, task
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError, MorphologyError
from equirl.observation import NUM_SCALARS, NUM_VECTORS

MIXED = ("hopper_3_shin", "walker_7_full", "cheetah_14_full")


@pytest.fixture(scope="module")
def mixed(make_env):
    return make_env(bodies=MIXED, num_envs=6, autoreset=False)


@pytest.fixture(scope="module")
def hopper(make_env):
    return make_env(bodies=("hopper_5_full",), num_envs=4, autoreset=False)


def random_actions(env, seed):
    return jax.random.uniform(jax.random.PRNGKey(seed), (env.num_envs,) + env.action_shape, minval=-1, maxval=1)


def test_mixed_batch_observation_layout(mixed):
    state = mixed.reset(jax.random.PRNGKey(0))
    obs = state.obs
    limbs = [m.num_limbs for m in mixed.morphologies] * 2
    assert obs.vectors.shape == (6, 16, NUM_VECTORS, 3) and obs.scalars.shape == (6, 16, NUM_SCALARS)
    np.testing.assert_array_equal(obs.limb_mask.sum(-1), limbs)
    for row, n in enumerate(limbs):
        assert not np.any(obs.vectors[row, n:]) and not np.any(obs.scalars[row, n:])  # padding is zero
        assert np.all(obs.parent[row, n:] == -1) and obs.parent[row, 0] == -1
        np.testing.assert_allclose(obs.vectors[row, :n, 1], np.tile([0, 0, -9.81], (n, 1)), rtol=1e-6)
    torso = obs.vectors[:, 0]
    np.testing.assert_allclose(torso[:, 0], 0.0, atol=1e-6)  # position relative to itself
    np.testing.assert_allclose(np.linalg.norm(torso[:, 2], axis=-1), 1.0, rtol=1e-5)  # unit target direction
    np.testing.assert_allclose(torso[:, 2, 2], 0.0)
    assert not np.any(torso[:, 5:])  # the torso has no hinge axes
    np.testing.assert_allclose(obs.scalars[:, 0, :12], np.r_[np.zeros(3), np.full(9, 0.5)][None].repeat(6, 0))
    np.testing.assert_array_equal(obs.scalars[:, 0, 12:16], np.tile([1, 0, 0, 0], (6, 1)))
    axes = np.linalg.norm(obs.vectors[:, :, 5:], axis=-1)
    np.testing.assert_allclose(axes[obs.action_mask], 1.0, rtol=1e-5)  # actuated hinges have unit axes
    # Random yaw at reset: headings are spread out, not all equal.
    headings = task.heading(state.qpos)
    assert np.ptp(np.arctan2(headings[:, 1], headings[:, 0])) > 0.5


def test_reward_is_the_published_formula(hopper, make_env):
    for env in (hopper, make_env(bodies=MIXED, num_envs=6, autoreset=False)):
        before = env.reset(jax.random.PRNGKey(1))
        action = random_actions(env, 2)
        after = env.step(before, action)
        t = env.tables
        p0, p1, target = (
            np.asarray(before.qpos[:, :2], np.float64),
            np.asarray(after.qpos[:, :2], np.float64),
            np.asarray(before.target, np.float64),
        )
        dt = np.asarray(t.dt)
        rot = np.asarray(jax.vmap(lambda q: task.quat_to_mat(q))(before.qpos[:, 3:7]))
        h = rot[:, :2, 0] / np.linalg.norm(rot[:, :2, 0], axis=-1, keepdims=True)
        masked = np.clip(np.asarray(action), -1, 1) * np.asarray(t.action_mask)
        expected = (
            (np.linalg.norm(target - p0, axis=-1) - np.linalg.norm(target - p1, axis=-1)) / dt
            + np.asarray(t.heading_weight) * np.sum((p1 - p0) * h, -1) / dt
            + np.asarray(t.alive_bonus)
            - 1e-3 * np.sum(masked**2, axis=(1, 2))
        )
        np.testing.assert_allclose(after.reward, expected, atol=2e-3)


def test_nonfinite_actions_are_zeroed_and_counted(hopper):
    state = hopper.reset(jax.random.PRNGKey(3))
    action = np.array(random_actions(hopper, 4))
    poisoned = action.copy()
    poisoned[0, 1, 0], poisoned[0, 2, 1], poisoned[2, 1, 2] = np.nan, np.inf, -np.inf
    cleaned = np.where(np.isfinite(poisoned), poisoned, 0.0)
    a, b = hopper.step(state, jnp.asarray(poisoned)), hopper.step(state, jnp.asarray(cleaned))
    np.testing.assert_array_equal(a.info["nonfinite_actions"], [2, 0, 1, 0])
    np.testing.assert_array_equal(a.qpos, b.qpos)
    assert np.isfinite(a.obs.vectors).all() and np.isfinite(a.reward).all()


def test_masked_actions_do_nothing(mixed):
    state = mixed.reset(jax.random.PRNGKey(5))
    action = np.array(random_actions(mixed, 6))
    other = np.where(np.asarray(state.obs.action_mask), action, 123.0)  # junk where nothing is driven
    a, b = mixed.step(state, jnp.asarray(action)), mixed.step(state, jnp.asarray(other))
    np.testing.assert_array_equal(a.qpos, b.qpos)
    np.testing.assert_array_equal(a.reward, b.reward)


def test_diverging_simulation_ends_its_episode_cleanly(hopper):
    state = hopper.reset(jax.random.PRNGKey(7))
    bad = state.replace(qvel=state.qvel.at[0, 6:].set(1e30), qpos=state.qpos.at[1, 9].set(jnp.nan))
    after = hopper.step(bad, jnp.zeros((4,) + hopper.action_shape))
    np.testing.assert_array_equal(after.info["unstable"], [True, True, False, False])
    assert after.terminated[0] and after.terminated[1]
    for leaf in (after.obs.vectors, after.obs.scalars, after.reward, after.qpos, after.qvel):
        assert np.isfinite(leaf).all()


def test_family_terminations(mixed):
    state = mixed.reset(jax.random.PRNGKey(8))
    qpos = np.array(state.qpos)
    qpos[0, 2] = 0.3  # hopper_3_shin below its 0.45 m minimum
    qpos[1, 3:7] = [np.cos(0.6), np.sin(0.6), 0, 0]  # walker rolled by 1.2 rad
    after = mixed.step(
        mixed.env.with_state(state, jnp.asarray(qpos), state.qvel, state.target), jnp.zeros((6,) + mixed.action_shape)
    )
    assert after.terminated[0] and after.terminated[1]
    assert not after.terminated[3] and not after.terminated[4]  # untouched hopper and walker live on
    # info["end_reasons"] names the broken condition, and is set exactly where an episode terminated.
    names = [task.reason_names(b) for b in np.asarray(after.info["end_reasons"])]
    assert names[0] == ("too_low",) and names[1] == ("roll",)
    np.testing.assert_array_equal(np.asarray(after.info["end_reasons"]) != 0, after.terminated)
    # A cheetah that stands still (sum of qvel^2 below 1) ends its episode.
    still = jnp.zeros_like(state.qvel)
    kin = task.kinematics(mixed.tables, state.qpos, still)
    ended = task.health_violations(mixed.tables, kin, state.qpos, still).any(-1)
    np.testing.assert_array_equal(ended, [False, False, True] * 2)
    moving = state.qvel.at[:, 0].set(1.5)
    kin = task.kinematics(mixed.tables, state.qpos, moving)
    assert not task.health_violations(mixed.tables, kin, state.qpos, moving).any()


def test_tilt_end_reasons_say_which_way_the_torso_leaned(hopper):
    # The hopper's tilt limit, split by direction in the torso's frame: a lean about its y axis is
    # forward, about its x axis sideways (after the random start yaw).
    state = hopper.reset(jax.random.PRNGKey(3))
    qpos = np.array(state.qpos)
    yaw = np.arctan2(*np.asarray(task.heading(state.qpos))[:, ::-1].T)
    for row, axis in ((0, (0.0, 1.0, 0.0)), (1, (1.0, 0.0, 0.0))):
        yaw_q = jnp.array([np.cos(yaw[row] / 2), 0, 0, np.sin(yaw[row] / 2)])
        tilt_q = jnp.array(np.r_[np.cos(0.6), np.sin(0.6) * np.asarray(axis)])  # 1.2 rad
        qpos[row, 3:7] = np.asarray(task.quat_mul(yaw_q, tilt_q))
        qpos[row, 2] += 1.0  # high enough that only the tilt is broken
    t = hopper.tables

    @jax.jit
    def reasons(q, v):
        return task.end_reasons(task.health_violations(t, task.kinematics(t, q, v), q, v), jnp.zeros(4, bool))

    bits = np.asarray(reasons(jnp.asarray(qpos), state.qvel))
    assert [task.reason_names(b) for b in bits] == [("tilt_forward",), ("tilt_sideways",), (), ()]
    counts = np.asarray(task.reason_counts(jnp.asarray(bits), jnp.array([True, True, False, True])))
    assert counts.shape == (len(task.END_REASONS),) and counts.sum() == 2
    assert counts[task.END_REASONS.index("tilt_forward")] == counts[task.END_REASONS.index("tilt_sideways")] == 1


def test_truncation_is_not_termination_and_autoreset_restarts(make_env):
    env = make_env(bodies=("walker_7_full",), num_envs=2, episode_length=3, autoreset=True)
    state = env.reset(jax.random.PRNGKey(9))
    zeros = jnp.zeros((2,) + env.action_shape)
    for _ in range(2):
        state = env.step(state, zeros)
        assert not state.truncated.any()
    state = env.step(state, zeros)
    assert state.truncated.all() and not state.terminated.any()
    np.testing.assert_array_equal(state.steps, 0)  # restarted
    np.testing.assert_array_equal(state.info["episode_length"], 3)
    assert not np.allclose(state.info["final_obs"].vectors, state.obs.vectors)  # the last observation is kept apart


def test_v2_draws_a_new_waypoint_when_reached(make_env):
    env = make_env(bodies=("hopper_5_full",), num_envs=2, task="v2", autoreset=False)
    state = env.reset(jax.random.PRNGKey(10))
    dist = np.linalg.norm(state.target - state.qpos[:, :2], axis=-1)
    assert np.all((dist >= 10) & (dist <= 20))
    near = state.target.at[0].set(state.qpos[0, :2] + jnp.array([0.5, 0.0]))
    after = env.step(env.env.with_state(state, state.qpos, state.qvel, near), jnp.zeros((2,) + env.action_shape))
    np.testing.assert_array_equal(after.info["waypoint_reached"], [True, False])
    new_dist = np.linalg.norm(after.target[0] - after.qpos[0, :2])
    assert 10 <= new_dist <= 20
    np.testing.assert_array_equal(after.target[1], near[1])


def test_v1_target_is_far_away(hopper):
    state = hopper.reset(jax.random.PRNGKey(11))
    np.testing.assert_allclose(np.linalg.norm(state.target - state.qpos[:, :2], axis=-1), 1e4, rtol=1e-5)


def test_native_backend_runs_inside_one_compiled_scan(hopper):
    env = hopper.env
    state = hopper.reset(jax.random.PRNGKey(12))
    actions = jax.random.uniform(jax.random.PRNGKey(13), (5, 4) + env.action_shape, minval=-1, maxval=1)
    scanned = jax.jit(lambda s, a: jax.lax.scan(lambda c, x: (env.step(c, x), c.reward), s, a))(state, actions)[0]
    looped = state
    for a in actions:
        looped = hopper.step(looped, a)
    np.testing.assert_allclose(scanned.qpos, looped.qpos, atol=1e-6)
    np.testing.assert_allclose(scanned.obs.vectors, looped.obs.vectors, atol=1e-5)


def test_same_key_same_trajectory(hopper):
    def run():
        state = hopper.reset(jax.random.PRNGKey(14))
        for i in range(3):
            state = hopper.step(state, random_actions(hopper, 20 + i))
        return state

    np.testing.assert_array_equal(run().qpos, run().qpos)


@pytest.mark.parametrize(
    "fields, problem",
    [
        (dict(num_envs=0), "num_envs=0"),
        (dict(task="v3"), "task='v3'"),
        (dict(backend="cuda"), "backend='cuda'"),
        (dict(max_limbs=-1), "max_limbs=-1"),
        (dict(bodies=()), "bodies"),
        (dict(episode_length=2.5), "episode_length=2.5"),
    ],
)
def test_config_rejects_bad_values(fields, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
        EnvConfig(**fields)


def test_unknown_body_and_too_many_limbs():
    from equirl.envs.batched import BatchedEnv

    with pytest.raises(MorphologyError, match="'walker_99'"):
        BatchedEnv(EnvConfig(bodies=("walker_99",)))
    with pytest.raises(MorphologyError, match="14 limbs is more than the configured maximum of 8"):
        BatchedEnv(EnvConfig(bodies=("cheetah_14_full",), max_limbs=8))
    with pytest.raises(ConfigError, match="num_envs=2"):
        BatchedEnv(EnvConfig(bodies=MIXED, num_envs=2))


def test_a_training_tilt_limit_only_tightens_the_published_one():
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig

    with pytest.raises(ConfigError, match="training_tilt_limit=-0.1: must be None or a positive angle"):
        EnvConfig(bodies=("hopper_3_shin",), training_tilt_limit=-0.1)
    bodies = ("hopper_3_shin", "walker_7_full", "cheetah_14_full")
    published = BatchedEnv(EnvConfig(bodies=bodies, num_envs=3, max_limbs=14, backend="native"))
    tight = BatchedEnv(EnvConfig(bodies=bodies, num_envs=3, max_limbs=14, backend="native", training_tilt_limit=0.3))
    try:
        for field in ("max_tilt", "max_pitch", "max_roll"):
            before, after = np.asarray(getattr(published.tables, field)), np.asarray(getattr(tight.tables, field))
            np.testing.assert_allclose(after, np.minimum(before, 0.3))
        # Published: hopper tilt 1 rad, walker and cheetah pitch/roll 1 and 1.35 rad (SPEC.md).
        np.testing.assert_allclose(np.asarray(published.tables.max_tilt)[0], 1.0)
        np.testing.assert_allclose(np.asarray(published.tables.max_pitch)[1:], [1.0, 1.35])
    finally:
        published.close()
        tight.close()


def test_unroll_steps_as_a_hand_written_loop_and_records_each_step(hopper):
    env = hopper.env
    state = hopper.reset(jax.random.PRNGKey(30))

    def policy(obs, key, t):  # the key and the step index reach the policy
        action = jax.random.uniform(key, (env.num_envs,) + env.action_shape, minval=-1, maxval=1)
        return action, t

    record = lambda step: (step.action, step.extras, step.after.reward, step.before.steps)  # noqa: E731
    final, _, (actions, ts, rewards, steps_before) = jax.jit(lambda s, k: rollout.unroll(env, s, policy, k, 4, record))(
        state, jax.random.PRNGKey(31)
    )
    np.testing.assert_array_equal(ts, np.arange(4))
    np.testing.assert_array_equal(steps_before[:, 0], np.arange(4))
    looped = state
    for t in range(4):
        looped = hopper.step(looped, actions[t])
        np.testing.assert_allclose(looped.reward, rewards[t], atol=1e-5)
    np.testing.assert_allclose(final.qpos, looped.qpos, atol=1e-6)


def test_run_episodes_folds_each_first_episode_end_once(make_env):
    env = make_env(bodies=("walker_7_full",), num_envs=3, episode_length=5, autoreset=True).env
    zeros = lambda obs, key, t: (jnp.zeros((env.num_envs,) + env.action_shape), ())  # noqa: E731

    def fold(acc, step, first_end):
        ends, length = acc
        return ends + first_end, jnp.where(first_end, step.after.info["episode_length"], length)

    start = (jnp.zeros(3, jnp.int32), jnp.zeros(3, jnp.int32))
    ends, length = jax.jit(lambda k: rollout.run_episodes(env, env.reset(k), zeros, k, fold, start, 50))(
        jax.random.PRNGKey(32)
    )
    np.testing.assert_array_equal(ends, 1)  # the autoreset's second episode is not counted
    assert np.all((length >= 1) & (length <= 5))


def test_a_training_progress_weight_scales_only_the_progress_terms(make_env):
    with pytest.raises(ConfigError, match="training_progress_weight=-1.0"):
        EnvConfig(bodies=("hopper_3_shin",), training_progress_weight=-1.0)
    published, states = _beside_the_published_reward(make_env, 5, training_progress_weight=0.0)
    rewards = [np.asarray(s.reward) for s in states]
    control = 0.001 * np.sum(np.where(np.asarray(published.tables.action_mask), 0.25, 0.0), axis=(-2, -1))
    alive = np.asarray(published.tables.alive_bonus)  # the cheetah has none
    np.testing.assert_allclose(rewards[1], alive - control, atol=1e-5)
    assert np.all(np.abs(rewards[0] - rewards[1]) > 1e-3)  # the published reward has progress in it


def _beside_the_published_reward(make_env, steps, **training_aid):
    """The published-reward env (the one test_reward_is_the_published_formula compiled) and the
    final states of it and of an env with `training_aid`, both stepped `steps` times with the
    same actions from the same starts."""
    envs = [
        make_env(bodies=MIXED, num_envs=6, autoreset=False),
        make_env(bodies=MIXED, num_envs=6, autoreset=False, **training_aid),
    ]
    action = jnp.full((6,) + envs[0].action_shape, 0.5)
    states = [env.reset(jax.random.PRNGKey(3)) for env in envs]
    for _ in range(steps):  # the same physics in both: only the reward differs
        states = [env.step(state, action) for env, state in zip(envs, states)]
    np.testing.assert_array_equal(states[0].qpos, states[1].qpos)
    return envs[0], states


def test_a_training_tilt_penalty_charges_the_torsos_tilt(make_env):
    with pytest.raises(ConfigError, match="training_tilt_penalty=-1.0"):
        EnvConfig(bodies=("hopper_3_shin",), training_tilt_penalty=-1.0)
    _, states = _beside_the_published_reward(make_env, 20, training_tilt_penalty=5.0)
    # cos(tilt): the world z component of the torso's z axis, its free joint's rotation applied to (0, 0, 1).
    rotations = [Rotation.from_quat(q, scalar_first=True) for q in np.asarray(states[1].qpos[:, 3:7], np.float64)]
    cos_tilt = np.array([r.apply([0.0, 0.0, 1.0])[2] for r in rotations])
    charged = np.asarray(states[0].reward) - np.asarray(states[1].reward)
    np.testing.assert_allclose(charged, 5.0 * (1.0 - cos_tilt), rtol=1e-3, atol=1e-6)
    assert charged.max() > 1e-3  # the bodies tilt, so the penalty is not zero


def test_a_training_target_spread_puts_the_first_target_near_the_initial_heading(make_env):
    for bad in (-0.1, 4.0, True):
        with pytest.raises(ConfigError, match="training_target_spread"):
            EnvConfig(bodies=("hopper_3_shin",), training_target_spread=bad)
    for spread in (0.0, 0.5):
        env = make_env(bodies=("hopper_3_shin", "walker_7_full"), num_envs=64, training_target_spread=spread)
        state = env.reset(jax.random.PRNGKey(5))
        h, d = np.asarray(task.heading(state.qpos)), np.asarray(state.target - state.qpos[:, :2])
        off = np.abs(np.arctan2(h[:, 0] * d[:, 1] - h[:, 1] * d[:, 0], np.sum(h * d, -1)))
        assert off.max() <= spread + 1e-4
        if spread:  # spread over the interval, not a fixed offset
            assert off.min() < 0.1 * spread and off.max() > 0.8 * spread
        headings = np.arctan2(h[:, 1], h[:, 0])  # the robots still face every way
        assert np.ptp(headings) > 5.0


def test_a_hinge_action_scale_bounds_each_hinge_axis_and_stays_in_eval(hopper, make_env):
    """(0.25, 1, 0.5) with action a moves the body and charges control as (1, 1, 1) with the
    action scaled per hinge axis (x, y, z), and `equirl eval`'s published task keeps it."""
    scale = (0.25, 1.0, 0.5)
    scaled = make_env(bodies=("hopper_5_full",), num_envs=4, autoreset=False, hinge_action_scale=scale)
    start = hopper.reset(jax.random.PRNGKey(5))
    action = random_actions(hopper, 6)
    mine, theirs = scaled.step(start, action), hopper.step(start, action * jnp.asarray(scale))
    np.testing.assert_allclose(mine.qpos, theirs.qpos, atol=1e-6)
    np.testing.assert_allclose(mine.reward, theirs.reward, atol=1e-5)
    assert not np.allclose(mine.qpos, hopper.step(start, action).qpos, atol=1e-6)
    assert scaled.env.config.without_training_aids().hinge_action_scale == scale


@pytest.mark.parametrize("scale", [(0.5, 1.0), (0.0, 1.0, 1.0), (1.0, 1.5, 1.0), (True, 1.0, 1.0)])
def test_a_hinge_action_scale_outside_0_1_is_refused(scale):
    with pytest.raises(ConfigError, match=r"hinge_action_scale=.*three numbers in \(0, 1\]"):
        EnvConfig(hinge_action_scale=scale)
