"""On-device replay ring buffer: a pytree of arrays with a leading capacity axis."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Buffer(NamedTuple):
    """Ring buffer state; `data` leaves have shape (capacity, ...)."""

    data: Any
    pos: jax.Array  # next slot to write
    size: jax.Array  # number of valid slots


def init(example, capacity: int) -> Buffer:
    """Empty buffer shaped like one transition `example` (a pytree of arrays)."""
    data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
    return Buffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def capacity(buf: Buffer) -> int:
    """Number of slots."""
    return jax.tree.leaves(buf.data)[0].shape[0]


def add(buf: Buffer, batch) -> Buffer:
    """Append a batch of transitions (leading axis n <= capacity), overwriting the oldest."""
    cap = capacity(buf)
    n = jax.tree.leaves(batch)[0].shape[0]
    if cap % n == 0:
        # Slots stay aligned to n, so one contiguous slice write suffices (cheaper than a scatter).
        data = jax.tree.map(lambda d, x: jax.lax.dynamic_update_slice_in_dim(d, x.astype(d.dtype), buf.pos, 0), buf.data, batch)
    else:
        idx = (buf.pos + jnp.arange(n)) % cap
        data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype)), buf.data, batch)
    return Buffer(data, (buf.pos + n) % cap, jnp.minimum(buf.size + n, cap))


def sample(buf: Buffer, key, batch_size: int):
    """Uniform sample with replacement from the valid slots."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buf.size, 1))
    return jax.tree.map(lambda d: d[idx], buf.data)
