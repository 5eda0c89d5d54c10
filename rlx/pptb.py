"""Policy Path Trimming and Boosting (Tang et al. 2024, "The Ladder in Chaos") as a plug-in for the DQN loop.

Every `pptb.every_updates / pptb.window` gradient updates the current parameters join a ring of the last `window`
snapshots; every `pptb.every_updates` updates (once the ring is full and learning has started) each layer — a flax
module, its leaves flattened into one row — is replaced by `diagnostics.trim_boost` of its (window, m) path:
the top-k reconstruction of the current row plus `boost` times the latest change of the major coordinates.
docs/dynamics.md says exactly what runs and why.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlx import diagnostics
from rlx.nets import leaf_names


class PPTBState(NamedTuple):
    """The ring of recent snapshots, one (window, m) array per layer, and how many have been taken."""

    ring: tuple  # per layer, rows in ring order; row (count - 1) % window is the newest
    count: jax.Array  # int32 snapshots taken so far


def layers(params) -> list[tuple[tuple, list[int]]]:
    """(module path, indices of its leaves in tree_leaves order) per flax module, in pytree order."""
    groups: dict[tuple, list[int]] = {}
    for i, name in enumerate(leaf_names(params)):
        groups.setdefault(tuple(name.split("/")[:-1]), []).append(i)
    return list(groups.items())


def _rows(params) -> list[jax.Array]:
    leaves = jax.tree_util.tree_leaves(params)
    return [jnp.concatenate([leaves[i].reshape(-1).astype(jnp.float32) for i in idx]) for _, idx in layers(params)]


def _unrows(params, rows):
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out = list(leaves)
    for (_, idx), row in zip(layers(params), rows, strict=True):
        start = 0
        for i in idx:
            size = leaves[i].size
            out[i] = row[start : start + size].reshape(leaves[i].shape).astype(leaves[i].dtype)
            start += size
    return jax.tree_util.tree_unflatten(treedef, out)


def init(params, window: int) -> PPTBState:
    """An empty ring for params."""
    return PPTBState(tuple(jnp.zeros((window, r.size), jnp.float32) for r in _rows(params)), jnp.int32(0))


def snapshot(state: PPTBState, params) -> PPTBState:
    """Push the current parameters into the ring."""
    window = state.ring[0].shape[0]
    slot = state.count % window
    ring = tuple(r.at[slot].set(row) for r, row in zip(state.ring, _rows(params), strict=True))
    return PPTBState(ring, state.count + 1)


def apply(state: PPTBState, params, cfg) -> tuple[Any, PPTBState, dict]:
    """Trim and boost every layer over the ring (whose newest row must be `params`); returns the new
    parameters, the ring with its newest row replaced by them, and {k_mean, shift} (relative change)."""
    b = cfg.pptb
    window = state.ring[0].shape[0]
    newest = (state.count - 1) % window
    # Time order: oldest first, the current parameters last (what trim_boost expects).
    order = (newest + 1 + jnp.arange(window)) % window
    rows, ks, sq_shift, sq_norm = [], [], 0.0, 0.0
    for ring in state.ring:
        path = ring[order]
        row, k = diagnostics.trim_boost(path, min(b.k, window), boost=b.boost, beta=b.beta)
        rows.append(row)
        ks.append(k)
        sq_shift += jnp.sum(jnp.square(row - path[-1]))
        sq_norm += jnp.sum(jnp.square(path[-1]))
    ring = tuple(r.at[newest].set(row) for r, row in zip(state.ring, rows, strict=True))
    stats = {"k_mean": jnp.mean(jnp.stack(ks).astype(jnp.float32)), "shift": jnp.sqrt(sq_shift / sq_norm)}
    return _unrows(params, rows), PPTBState(ring, state.count), stats
