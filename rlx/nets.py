"""Flax modules for value networks."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    """ReLU MLP Q-network over flattened observations; optional LayerNorm after each hidden Dense."""

    hidden: Sequence[int]
    num_actions: int
    layer_norm: bool = False
    obs_ndim: int = 1  # trailing axes that make up one observation (3 for MinAtar HxWxC grids)

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        for width in self.hidden:
            x = nn.Dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return nn.Dense(self.num_actions)(x)


def make_q_network(net_cfg, obs_shape, num_actions: int, **options) -> nn.Module:
    """The Q-network for a config and an env's observation shape; `options` (from the exploration
    strategy, e.g. layer_norm=True) override the config's."""
    kw = {"layer_norm": net_cfg.layer_norm, **options}
    return MLP(tuple(net_cfg.hidden), num_actions, obs_ndim=len(obs_shape), **kw)


def greedy(q):
    """Argmax action as int32."""
    return jnp.argmax(q, axis=-1).astype(jnp.int32)
