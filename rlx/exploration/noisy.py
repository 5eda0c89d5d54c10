"""NoisyNets exploration (Fortunato et al. 2018): act greedily on a freshly noised network, ε = 0.

The noise lives in the network (NoisyDense layers, σ learned by the TD loss), so the strategy only asks
for a noisy net, fresh noise in each TD-loss pass, and a fresh noise key at every acting step.
"""

from __future__ import annotations

import jax.numpy as jnp

from rlx.exploration.base import Strategy
from rlx.nets import greedy


def _act(state, key, q_apply, params, obs, step, hp):
    actions = greedy(q_apply(params, obs, key))
    # The extra μ pass only feeds the metric: how often the noise changes the action is what it explores.
    differs = jnp.mean((actions != greedy(q_apply(params, obs))).astype(jnp.float32))
    return actions, state, {"frac_differs": differs}


def make(cfg, num_actions: int) -> Strategy:
    """The NoisyNets strategy: noisy layers with σ0 = cfg.noisy.sigma0, greedy on one noise sample per step."""
    return Strategy(act=_act, net={"noisy": True, "noisy_sigma0": cfg.noisy.sigma0}, train_noise=True)
