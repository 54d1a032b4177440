"""Attention over limbs: limb-tree structure as a bias, padding as a mask.

Both the SET and the plain transformer use these, so the two differ only in
how they treat vectors. Nothing here has per-body parameters: a learned bias
per head for each tree distance (0, 1, ..., max, farther) and for each
relation (self, ancestor, descendant, neither) lets one network read any tree.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

MASKED_LOGIT = -1e9  # finite: a row whose keys are all padding gives no NaN
NUM_RELATIONS = 4  # self, ancestor, descendant, neither


def ancestor_hops(parent: jax.Array, max_hops: int) -> jax.Array:
    """hops[..., i, a]: parent steps from limb i up to limb a, or -1 if a is not
    an ancestor of i (or i itself) within max_hops.

    parent [..., L] int, -1 at roots and padding. jit-friendly: L and max_hops
    are static, and the walk is a fori_loop of max_hops + 1 gathers. Parent
    indices outside [-1, L) are clamped by the gather and cannot raise.
    """
    num = parent.shape[-1]
    index = jnp.arange(num)

    def step(k, carry):
        current, hops = carry
        here = (current[..., None] == index) & (current[..., None] >= 0)
        hops = jnp.where(here & (hops < 0), k, hops)
        up = jnp.take_along_axis(parent, jnp.maximum(current, 0), axis=-1)
        return jnp.where(current >= 0, up, -1), hops

    start = (jnp.broadcast_to(index, parent.shape).astype(parent.dtype), jnp.full(parent.shape + (num,), -1, jnp.int32))
    return jax.lax.fori_loop(0, max_hops + 1, step, start)[1]


def tree_structure(parent: jax.Array, max_distance: int) -> tuple[jax.Array, jax.Array]:
    """(distance, relation) between every pair of limbs, each [..., L, L] int.

    distance: edges on the limb-tree path, capped: pairs farther than
      max_distance, or in different trees (as padding limbs are), get
      max_distance + 1.
    relation: 0 self, 1 j is an ancestor of i, 2 j is a descendant of i,
      3 neither (ancestry looked for within max_distance hops).
    """
    hops = ancestor_hops(parent, max_distance)
    far = max_distance + 1
    up = jnp.where(hops >= 0, hops, far)
    # Path length through each common ancestor a, then the nearest one.
    distance = jnp.minimum(jnp.min(up[..., :, None, :] + up[..., None, :, :], axis=-1), far)
    relation = jnp.where(hops > 0, 1, jnp.where(jnp.swapaxes(hops, -1, -2) > 0, 2, 3))
    return distance, jnp.where(hops == 0, 0, relation)


class TreeBias(nn.Module):
    """A learned attention bias [..., heads, L, L] from the limb tree (zero at init)."""

    heads: int
    max_distance: int

    @nn.compact
    def __call__(self, parent: jax.Array) -> jax.Array:
        distance, relation = tree_structure(parent, self.max_distance)
        zeros = nn.initializers.zeros
        by_distance = nn.Embed(self.max_distance + 2, self.heads, embedding_init=zeros, name="distance")(distance)
        by_relation = nn.Embed(NUM_RELATIONS, self.heads, embedding_init=zeros, name="relation")(relation)
        return jnp.moveaxis(by_distance + by_relation, -1, -3)


def attention_weights(logits: jax.Array, limb_mask: jax.Array) -> jax.Array:
    """Softmax over keys [..., H, L_query, L_key], padding keys excluded.

    Padding keys get exactly zero weight (also in the gradient), so adding
    padded limbs changes nothing for real ones.
    """
    keys = limb_mask[..., None, None, :]
    weights = jax.nn.softmax(jnp.where(keys, logits, MASKED_LOGIT), axis=-1)
    return jnp.where(keys, weights, 0.0)
