"""Random observations with the environment's structure, for tests and benchmarks.

Cheaper than stepping an environment, and wider in coverage: any number of
real limbs (at least one), padding anywhere when shuffled, random limb trees,
random missing hinges. Vectors follow the channel layout of
`equirl.envs.task.Observation` (gravity (0, 0, -9.81), a horizontal unit
target direction shared by the limbs of one body, unit hinge axes or zeros).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from equirl.envs.task import GRAVITY, NUM_SCALARS, NUM_VECTORS, Observation


def random_tree(rng: np.random.Generator, num_real: int, num_limbs: int, shuffle: bool) -> tuple[np.ndarray, np.ndarray]:
    """(parent [L], mask [L]) of a random tree of num_real limbs in num_limbs slots.

    Unshuffled, the torso is slot 0, parents precede children and padding is
    at the end, as the environment stores them; shuffled, slots are permuted.
    """
    parent = np.full(num_limbs, -1, np.int32)
    for i in range(1, num_real):
        parent[i] = rng.integers(0, i)
    mask = np.arange(num_limbs) < num_real
    if shuffle:
        order = rng.permutation(num_limbs)  # new slot of old limb i: where(order == i)
        slot = np.argsort(order)
        parent = np.where(parent[order] >= 0, slot[np.maximum(parent[order], 0)], -1).astype(np.int32)
        mask = mask[order]
    return parent, mask


def random_observation(
    seed: int,
    batch: int,
    num_limbs: int = 8,
    min_real: int = 1,
    shuffle: bool = False,
    dtype=jnp.float32,
) -> Observation:
    """A batch [batch] of random observations with num_limbs limb slots."""
    rng = np.random.default_rng(seed)
    parents, masks = [], []
    for _ in range(batch):
        parent, mask = random_tree(rng, int(rng.integers(min_real, num_limbs + 1)), num_limbs, shuffle)
        parents.append(parent)
        masks.append(mask)
    parent, mask = np.stack(parents), np.stack(masks)

    vectors = np.zeros((batch, num_limbs, NUM_VECTORS, 3))
    vectors[:, :, 0] = rng.normal(0.0, 0.5, (batch, num_limbs, 3))
    vectors[:, :, 1] = GRAVITY
    heading = rng.uniform(-np.pi, np.pi, batch)
    vectors[:, :, 2] = np.stack([np.cos(heading), np.sin(heading), np.zeros(batch)], -1)[:, None]
    vectors[:, :, 3] = rng.normal(0.0, 2.0, (batch, num_limbs, 3))
    vectors[:, :, 4] = rng.normal(0.0, 3.0, (batch, num_limbs, 3))
    axes = rng.normal(size=(batch, num_limbs, 3, 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    has_hinge = rng.random((batch, num_limbs, 3)) < 0.7
    is_root = parent < 0
    has_hinge &= ~is_root[..., None] & mask[..., None]
    vectors[:, :, 5:8] = np.where(has_hinge[..., None], axes, 0.0)
    vectors[is_root, 0] = 0.0  # positions are relative to the torso
    scalars = rng.normal(size=(batch, num_limbs, NUM_SCALARS))
    vectors = np.where(mask[..., None, None], vectors, 0.0)
    scalars = np.where(mask[..., None], scalars, 0.0)
    return Observation(
        vectors=jnp.asarray(vectors, dtype),
        scalars=jnp.asarray(scalars, dtype),
        limb_mask=jnp.asarray(mask),
        parent=jnp.asarray(parent),
        action_mask=jnp.asarray(has_hinge),
    )
