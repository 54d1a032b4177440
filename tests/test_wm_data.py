"""World-model data: collection on disk, windows within episodes, observer flows."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.errors import ConfigError
from equirl.geometry import ROTATION_GENERATOR_Z, compose_isometries, isometry_along
from equirl.worldmodels.data import CollectConfig, FlowRange, WindowDataset, flowed
from equirl.worldmodels.flows import ObserverFlow, apply_flow, flow_element
from helpers.wm import TINY_BODIES, TINY_STEPS, tiny_batch, tiny_data, tiny_dataset


def test_collected_dataset_on_disk():
    path = tiny_dataset()
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["bodies"] == list(TINY_BODIES)
    assert meta["steps"] == TINY_STEPS and meta["policy"] == "random" and meta["seed"] == 0
    assert meta["num_limbs"] == 3  # hopper_3_shin; the walker is padded
    assert len(meta["shards"]) == 2
    with np.load(path / meta["shards"][0]) as shard:
        assert shard["vectors"].shape == (2, 40, 3, 8, 3)
        assert shard["actions"].shape == (2, 40, 3, 3)
        assert shard["limb_mask"].tolist() == [[True, True, True], [True, True, False]]
        # padding limbs and undriven hinges get no torque
        assert np.all(shard["actions"][~np.broadcast_to(shard["action_mask"][:, None], shard["actions"].shape)] == 0)


def test_windows_never_cross_an_episode():
    data = tiny_data(6)
    for shard_id, env, start in data.starts:
        starts = data.shards[shard_id]["episode_start"][env, start + 1 : start + 6]
        assert not starts.any()
    batch = tiny_batch(6, 16)
    # consecutive frames of one episode: the torso moves a few centimetres per step at most
    step = np.linalg.norm(np.diff(np.asarray(batch.torso_position), axis=1), axis=-1)
    assert step.max() < 0.2
    # the recorded torso position is the torso's: its height is the torso limb's height scalar
    np.testing.assert_allclose(batch.torso_position[..., 2], batch.obs.scalars[:, :, 0, 16], atol=1e-5)


def test_train_and_test_splits_are_disjoint():
    train = WindowDataset.load(tiny_dataset(), 5, "train", 0.25)
    test = WindowDataset.load(tiny_dataset(), 5, "test", 0.25)
    assert len(train) and len(test)
    last_train = max(int(s) + 5 for s in train.starts[:, 2] % 40)
    assert last_train <= 30 and (test.starts[:, 2] % 40 >= 30).all()


def test_flows_act_frame_by_frame():
    batch = tiny_batch(6, 4)
    flow = ObserverFlow.make(0.3, (0.02, -0.01))
    moved = jax.jit(apply_flow)(flow, batch)
    center = batch.torso_position[:, 0] * jnp.array([1.0, 1.0, 0.0])
    elements = jax.jit(jax.vmap(flow_element, (None, 0, None)))(flow, jnp.arange(6.0), center[0])
    for t in range(6):
        g = jax.tree.map(lambda x: x[t], elements)
        np.testing.assert_allclose(
            moved.obs.vectors[0, t], jnp.einsum("ij,lcj->lci", g.rotation, batch.obs.vectors[0, t]), atol=1e-5
        )
        np.testing.assert_allclose(
            moved.torso_position[0, t], g.rotation @ batch.torso_position[0, t] + g.translation, atol=1e-5
        )
    # gravity and scalars are untouched; the first frame is not moved
    np.testing.assert_allclose(moved.obs.vectors[..., 1, :], batch.obs.vectors[..., 1, :], atol=1e-6)
    assert jnp.array_equal(moved.obs.scalars, batch.obs.scalars)
    np.testing.assert_allclose(moved.torso_position[:, 0], batch.torso_position[:, 0], atol=1e-6)


def test_flow_elements_form_a_one_parameter_group():
    flow = ObserverFlow.make(0.4, (0.1, 0.05))
    center = jnp.array([1.0, -2.0, 0.0])
    for s, t in ((1.0, 4.0), (2.5, 0.5)):
        a = compose_isometries(flow_element(flow, s, center), flow_element(flow, t, center))
        b = flow_element(flow, s + t, center)
        np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-6)
        np.testing.assert_allclose(a.translation, b.translation, atol=1e-5)
    # a pure yaw rate about the origin is the geometry module's subgroup
    pure = flow_element(ObserverFlow.make(0.4), 3.0)
    np.testing.assert_allclose(
        pure.rotation, isometry_along(0.4 * ROTATION_GENERATOR_Z, jnp.zeros(3), 3.0).rotation, atol=1e-6
    )


def test_random_flows_stay_in_range():
    batch = tiny_batch(6, 8)
    flows = FlowRange(max_yaw_rate=0.05, max_speed=0.01)
    sample = jax.jit(flows.sample, static_argnums=1)(jax.random.PRNGKey(0), 1000)
    assert float(jnp.abs(sample.yaw_rate).max()) <= 0.05
    assert float(jnp.linalg.norm(sample.velocity, axis=-1).max()) <= 0.01 + 1e-7
    moved = jax.jit(flowed, static_argnums=2)(batch, jax.random.PRNGKey(1), flows)
    assert not jnp.allclose(moved.obs.vectors, batch.obs.vectors)
    assert flowed(batch, jax.random.PRNGKey(1), FlowRange()) is batch


def test_bad_input_is_named():
    with pytest.raises(ConfigError, match="collect.steps=0"):
        CollectConfig(steps=0)
    with pytest.raises(ConfigError, match="no-such-run"):
        from equirl.worldmodels.data import collect

        collect(CollectConfig(policy="no-such-run", out="/tmp/never"))
    with pytest.raises(ConfigError, match="not a world-model dataset"):
        WindowDataset.load("/nonexistent/folder", 4)
    with pytest.raises(ConfigError, match="no window of 500 frames"):
        WindowDataset.load(tiny_dataset(), 500)
    with pytest.raises(ConfigError, match="max_yaw_rate=-1"):
        FlowRange(max_yaw_rate=-1)
