"""Tree distances and relations from parent indices; masked attention weights."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from equirl.nn.tree_attention import attention_weights, tree_structure
from helpers.synthetic import random_observation


def bfs_distances(parent, mask):
    n = len(parent)
    adj = [[] for _ in range(n)]
    for i, p in enumerate(parent):
        if mask[i] and p >= 0:
            adj[i].append(p)
            adj[p].append(i)
    dist = np.full((n, n), -1)
    for s in range(n):
        dist[s, s] = 0
        todo = deque([s])
        while todo:
            u = todo.popleft()
            for v in adj[u]:
                if dist[s, v] < 0:
                    dist[s, v] = dist[s, u] + 1
                    todo.append(v)
    return dist


def is_ancestor(parent, i, j):
    """j is a strict ancestor of i."""
    p = parent[i]
    while p >= 0:
        if p == j:
            return True
        p = parent[p]
    return False


def test_tree_structure_matches_breadth_first_search():
    obs = random_observation(0, 24, 10, shuffle=True)
    max_distance = 4
    distance, relation = jax.jit(tree_structure, static_argnums=1)(obs.parent, max_distance)
    for b in range(24):
        parent, mask = np.asarray(obs.parent[b]), np.asarray(obs.limb_mask[b])
        ref = bfs_distances(parent, mask)
        real = np.ix_(mask, mask)
        expected = np.where((ref < 0) | (ref > max_distance), max_distance + 1, ref)
        np.testing.assert_array_equal(np.asarray(distance[b])[real], expected[real])
        for i in np.flatnonzero(mask):
            for j in np.flatnonzero(mask):
                want = 0 if i == j else 1 if is_ancestor(parent, i, j) else 2 if is_ancestor(parent, j, i) else 3
                if ref[i, j] > max_distance:  # ancestry is only looked for within max_distance hops
                    want = 3 if i != j else 0
                assert int(relation[b, i, j]) == want, (b, i, j)


def test_attention_ignores_padding_keys_and_stays_finite():
    logits = np.random.default_rng(0).normal(0.0, 50.0, (2, 3, 5, 5)).astype(np.float32)
    mask = np.array([[True, False, True, True, False], [False] * 5])

    @jax.jit
    def weights_and_grad(logits, mask):
        loss = lambda l: jnp.sum(attention_weights(l, mask) ** 2)  # noqa: E731
        return attention_weights(logits, mask), jax.grad(loss)(logits)

    a, grad = weights_and_grad(logits, mask)
    assert np.all(np.isfinite(np.asarray(a)))
    np.testing.assert_allclose(np.asarray(a[0]).sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(a[0])[..., ~mask[0]] == 0.0)
    assert np.all(np.asarray(a[1]) == 0.0)  # no real limb: no weight anywhere
    assert np.all(np.isfinite(np.asarray(grad)))
