"""Random observations with the environment's structure, for tests and benchmarks.

Cheaper than stepping an environment, and wider in coverage: any number of
real limbs (at least one), padding anywhere when shuffled, random limb trees,
random missing hinges. Vectors follow the channel layout of
`equirl.observation.Observation` (gravity (0, 0, -9.81), a horizontal unit
target direction shared by the limbs of one body, unit hinge axes or zeros).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from equirl.envs.task import GRAVITY
from equirl.observation import NUM_SCALARS, NUM_VECTORS, Observation


def random_tree(
    rng: np.random.Generator, num_real: int, num_limbs: int, shuffle: bool
) -> tuple[np.ndarray, np.ndarray]:
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


def random_parameters(module, seed: int, *example_inputs, scale: float = 1.0):
    """Random parameters for `module` drawn with numpy, without compiling its init.

    Shapes come from jax.eval_shape(module.init, ...) (tracing only). Every
    entry is drawn at random -- kernels N(0, scale^2 / fan_in), everything
    else (biases, norms' scales, embeddings, ...) N(0, 0.3^2 scale^2), plus
    1 for LayerNorm/VectorNorm scales and gains -- so symmetry and masking
    tests exercise every parameter (flax's init leaves biases and the tree
    bias at zero). For tests; training uses `init_networks`.
    """
    import jax

    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *example_inputs)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel" and len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) == 2 else int(leaf.shape[-2])
            values = rng.normal(0.0, scale / np.sqrt(fan_in), leaf.shape)
        else:
            values = rng.normal(0.0, 0.3 * scale, leaf.shape)
            if name in ("scale", "gain"):
                values += 1.0
        return jnp.asarray(values, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def permute_limbs(obs: Observation, order) -> Observation:
    """Store limb order[j] in slot j (limb axis 1 of a [B, L, ...] batch), with
    parent indices renamed alike: the same bodies, stored in another order."""
    order = np.asarray(order)
    slot = np.argsort(order)
    parent = np.asarray(obs.parent)[:, order]
    parent = np.where(parent >= 0, slot[np.maximum(parent, 0)], -1)
    return obs.replace(
        vectors=obs.vectors[:, order],
        scalars=obs.scalars[:, order],
        limb_mask=obs.limb_mask[:, order],
        parent=jnp.asarray(parent, obs.parent.dtype),
        action_mask=obs.action_mask[:, order],
    )


def pad_with_garbage(obs: Observation, extra: int, seed: int = 0) -> Observation:
    """Append `extra` padding limbs to a [B, L, ...] batch and fill every padding
    slot (old and new) with garbage: large random vectors and scalars, random
    parent indices (possibly pointing at real limbs), action masks set.
    A network that honours the limb mask gives the same outputs for real limbs."""
    rng = np.random.default_rng(seed)
    b, n = obs.limb_mask.shape
    size = n + extra

    def grow(x, fill):
        pad = np.broadcast_to(np.asarray(fill, np.asarray(x).dtype), (b, extra) + x.shape[2:])
        return np.concatenate([np.asarray(x), pad], axis=1)

    mask = grow(obs.limb_mask, False)
    junk = rng.normal(0.0, 5.0, (b, size) + obs.vectors.shape[2:])
    vectors = np.where(mask[..., None, None], grow(obs.vectors, 0.0), junk)
    scalars = np.where(mask[..., None], grow(obs.scalars, 0.0), rng.normal(0.0, 5.0, (b, size, obs.scalars.shape[-1])))
    parent = np.where(mask, grow(obs.parent, -1), rng.integers(-1, size, (b, size)))
    return obs.replace(
        vectors=jnp.asarray(vectors, obs.vectors.dtype),
        scalars=jnp.asarray(scalars, obs.scalars.dtype),
        limb_mask=jnp.asarray(mask),
        parent=jnp.asarray(parent, obs.parent.dtype),
        action_mask=jnp.asarray(np.where(mask[..., None], grow(obs.action_mask, False), True)),
    )


def edge_case_observation(seed: int, num_limbs: int = 8) -> Observation:
    """A batch of 4 padded observations at the numerical edge: a torso-only body
    (no hinge at all), a body whose vectors are all zero, one with zero
    velocities, and one with no real limb."""
    obs = random_observation(seed, 4, num_limbs)
    mask = np.asarray(obs.limb_mask).copy()
    vectors = np.asarray(obs.vectors).copy()
    mask[0] = np.arange(num_limbs) < 1
    vectors[1] = 0.0
    vectors[2, :, 3:5] = 0.0
    mask[3] = False
    jmask = jnp.asarray(mask)
    return obs.replace(
        vectors=jnp.asarray(np.where(mask[..., None, None], vectors, 0.0), obs.vectors.dtype),
        scalars=jnp.where(jmask[..., None], obs.scalars, 0.0),
        limb_mask=jmask,
        parent=jnp.where(jmask, obs.parent, -1),
        action_mask=obs.action_mask & jmask[..., None],
    )
