"""A replay buffer that lives on the device, as plain arrays.

The buffer is a preallocated pytree of [capacity, ...] arrays with its write
position and fill level as jnp scalars, so it can be carried through a
compiled training loop and checkpointed with the rest of the agent's state.
Batches are written as a ring: row (position + i) % capacity, so a batch that
crosses the end wraps to the front, whatever the capacity. Sampling is
uniform over the rows filled so far.
"""

from __future__ import annotations

from typing import Any

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
