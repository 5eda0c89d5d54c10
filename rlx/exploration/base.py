"""What every exploration strategy is made of: the Strategy tuple, the shared ε schedule and the no-op parts.

A strategy is a small NamedTuple of pure functions, optax-style:

    init(key, params, num_envs)                       -> state
    act(state, key, q_apply, params, obs, step, hp)   -> (actions, state, metrics)
    observe(state, key, params, done)                 -> state     # per-env episode ends (e.g. resample noise)
    adapt(state, key, q_apply, params, obs, step, hp) -> state     # every `adapt_every` env steps, after learning

`q_apply(params, obs, key=None)` gives Q-values (a key samples NoisyNet noise; None uses the mean
weights); `obs` is a batch; `step` is env steps so far for this seed (shared by all seeds, not batched);
`hp` holds the batched hyperparameters (rlx.config.HParams). `metrics` is a dict of scalars; the agent
reports each as its mean over the chunk. The agent calls these and never branches on the strategy's
name: what a strategy needs from the network it says in `net` (see rlx.agents.core.q_network for who wins
when the agent and the strategy both set an option), `train_noise` asks for fresh noise keys in the TD
loss, and `optimizer` (if not None) wraps the agent's optax transform, which the agent then updates as
`tx.update(grads, opt_state, params, eta=lr, key=k)` (e.g. natural Langevin noise, rlx.exploration.langevin).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.nets import greedy


def no_state(key, params, num_envs):
    """init of a strategy that keeps no state."""
    return ()


def keep(state, *args):
    """observe or adapt of a strategy that does not change its state."""
    return state


def greedy_act(state, key, q_apply, params, obs, step, hp):
    """act: the greedy action of the given parameters, no metric."""
    return greedy(q_apply(params, obs)), state, {}


class Strategy(NamedTuple):
    """The four pure functions of an exploration strategy and what it needs from the agent."""

    init: Callable = no_state
    act: Callable = greedy_act
    observe: Callable = keep
    adapt: Callable = keep
    adapt_every: int = 0  # env steps between adapt calls; 0 = never
    # network options this strategy requires, e.g. {"layer_norm": True}; they win over the agent's and net.*
    net: Mapping = MappingProxyType({})
    train_noise: bool = False  # the TD loss samples independent noise for each network pass
    optimizer: Callable | None = None  # wraps the agent's optax transform, e.g. to add Langevin noise; None keeps it


def linear_epsilon(step, hp):
    """ε linearly from eps_start to eps_end over eps_decay_steps env steps, then flat."""
    frac = jnp.clip(step / hp.eps_decay_steps, 0.0, 1.0)
    return hp.eps_start + frac * (hp.eps_end - hp.eps_start)


def eps_greedy_actions(key, q, eps):
    """With probability eps a uniform action, else the argmax (independently per row)."""
    k_explore, k_action = jax.random.split(key)
    n, num_actions = q.shape
    rand = jax.random.randint(k_action, (n,), 0, num_actions)
    explore = jax.random.uniform(k_explore, (n,)) < eps
    return jnp.where(explore, rand, greedy(q))
