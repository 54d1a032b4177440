"""A replay buffer that lives on the device, as plain arrays.

The buffer is a preallocated pytree of [capacity, ...] arrays with its write
position and fill level as jnp scalars, so it can be carried through a
compiled training loop and checkpointed with the rest of the agent's state.
Batches are written as a ring: row (position + i) % capacity, so a batch that
crosses the end wraps to the front, whatever the capacity. Sampling is
uniform over the rows filled so far.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from equirl.errors import ConfigError


@struct.dataclass
class ReplayBuffer:
    data: Any  # pytree of [capacity, ...] arrays
    position: jax.Array  # int32: the row the next item goes to
    size: jax.Array  # int32: rows filled (saturates at capacity)

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(example: Any, capacity: int) -> ReplayBuffer:
    """An empty buffer of `capacity` items shaped like `example` (one item, no batch axis)."""
    if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
        raise ConfigError(f"capacity={capacity!r}: must be an integer >= 1")
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return ReplayBuffer(data=data, position=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def insert(buffer: ReplayBuffer, batch: Any) -> ReplayBuffer:
    """Write a batch (leaves [n, ...]) after the last item, wrapping around the end.

    n may not exceed the capacity: a scatter with repeated rows would keep an
    arbitrary one of them.
    """
    n = jax.tree.leaves(batch)[0].shape[0]
    capacity = buffer.capacity
    if n > capacity:
        raise ConfigError(f"a batch of {n} items does not fit a replay buffer of capacity {capacity}")
    rows = (buffer.position + jnp.arange(n, dtype=jnp.int32)) % capacity
    data = jax.tree.map(lambda store, x: store.at[rows].set(x.astype(store.dtype)), buffer.data, batch)
    return ReplayBuffer(
        data=data,
        position=(buffer.position + n) % capacity,
        size=jnp.minimum(buffer.size + n, capacity),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Any:
    """`batch_size` items drawn uniformly (with replacement) from the filled rows.

    Until the buffer is full the filled rows are 0..size-1; afterwards all are.
    On an empty buffer it returns row 0 (zeros): callers gate on `size`.
    """
    rows = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    return jax.tree.map(lambda store: store[rows], buffer.data)


class NStep(NamedTuple):
    """n-step transitions drawn from a buffer of `offpolicy.Transition`s."""

    obs: Any
    action: jax.Array
    reward: jax.Array  # sum_k gamma^k r_k over the steps taken (raw rewards)
    next_obs: Any  # the observation the last step taken ended in
    terminated: jax.Array  # bool: the last step taken terminated the episode
    steps: jax.Array  # int32 in [1, n]: steps taken
    row: jax.Array  # int32: the buffer row of the first step (its environment is row % stride)


def sample_n_step(buffer: ReplayBuffer, key: jax.Array, batch_size: int, n: int, gamma: float, stride: int) -> NStep:
    """`batch_size` n-step transitions starting at uniformly drawn rows.

    The buffer must hold `Transition`s (obs, action, reward, next_obs,
    terminated, done) written time-major by one set of `stride` environments,
    so an environment's next step is `stride` rows further on (modulo the
    capacity). A sum stops after the step that ended the episode (done) and
    at the newest row written: it never crosses into another episode or into
    rows not written yet (or, once the ring is full, into the oldest ones).
    """
    capacity = buffer.capacity
    rows = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.size, 1))
    first = jax.tree.map(lambda store: store[rows], buffer.data)
    reward, next_obs, terminated = first.reward, first.next_obs, first.terminated
    steps = jnp.ones(batch_size, jnp.int32)
    alive = ~first.done
    newer = (buffer.position - 1 - rows) % capacity  # rows written after each start row
    for k in range(1, n):
        valid = alive & (k * stride <= newer)
        tr = jax.tree.map(lambda store: store[(rows + k * stride) % capacity], buffer.data)
        reward = reward + jnp.where(valid, gamma**k * tr.reward, 0.0)
        pick = lambda new, old: jnp.where(valid.reshape(valid.shape + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
        next_obs = jax.tree.map(pick, tr.next_obs, next_obs)
        terminated = jnp.where(valid, tr.terminated, terminated)
        steps = jnp.where(valid, k + 1, steps)
        alive = valid & ~tr.done
    return NStep(first.obs, first.action, reward, next_obs, terminated, steps, rows)
