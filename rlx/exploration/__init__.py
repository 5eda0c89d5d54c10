"""Exploration strategies, optax-style: each is a small NamedTuple of pure functions.

    init(key, params, num_envs)                       -> state
    act(state, key, q_apply, params, obs, step, hp)   -> (actions, state, metrics)
    observe(state, key, params, done)                 -> state     # per-env episode ends (e.g. resample noise)
    adapt(state, key, q_apply, params, obs, step, hp) -> state     # every `adapt_every` env steps, after learning

`q_apply(params, obs, key=None)` gives Q-values (a key samples NoisyNet noise; None uses the mean
weights); `obs` is a batch; `step` is env steps so far for this seed (shared by all seeds, not batched);
`hp` holds the batched hyperparameters (see rlx.config). `metrics` is a dict of scalars; the agent
reports each as its mean over the chunk. The agent calls these and never branches on the strategy's
name: what a strategy needs from the network it says in `net`, `train_noise` asks for fresh noise
keys in the TD loss, and `optimizer` (if not None) wraps the agent's optax transform, which the agent then
updates as `tx.update(grads, opt_state, params, eta=lr, key=k)` (e.g. natural Langevin noise, see
rlx.exploration.langevin).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.errors import UserError, did_you_mean
from rlx.nets import greedy


class Strategy(NamedTuple):
    """The four pure functions of an exploration strategy and what it needs from the agent."""

    init: Callable
    act: Callable
    observe: Callable
    adapt: Callable
    adapt_every: int = 0  # env steps between adapt calls; 0 = never
    net: tuple = ()  # network options as (name, value) pairs, e.g. (("layer_norm", True),)
    train_noise: bool = False  # the TD loss samples independent noise for each network pass
    optimizer: Callable | None = None  # wraps the agent's optax transform, e.g. to add Langevin noise; None keeps it


def linear_epsilon(step, hp):
    """ε linearly from eps_start to eps_end over eps_decay_steps env steps, then flat."""
    frac = jnp.clip(step / hp.eps_decay_steps, 0.0, 1.0)
    return hp.eps_start + frac * (hp.eps_end - hp.eps_start)


def _no_state(key, params, num_envs):
    return ()


def _keep(state, *args):
    return state


def _no_adapt(state, *args):
    return state


def eps_greedy_actions(key, q, eps):
    """With probability eps a uniform action, else the argmax (independently per row)."""
    k_explore, k_action = jax.random.split(key)
    n, num_actions = q.shape
    rand = jax.random.randint(k_action, (n,), 0, num_actions)
    explore = jax.random.uniform(k_explore, (n,)) < eps
    return jnp.where(explore, rand, greedy(q))


def _greedy_act(state, key, q_apply, params, obs, step, hp):
    return greedy(q_apply(params, obs)), state, {}


def _eps_act(state, key, q_apply, params, obs, step, hp):
    eps = linear_epsilon(step, hp)
    return eps_greedy_actions(key, q_apply(params, obs), eps), state, {"eps": eps}


greedy_strategy = Strategy(_no_state, _greedy_act, _keep, _no_adapt)
eps_greedy = Strategy(_no_state, _eps_act, _keep, _no_adapt)

def _param_noise(cfg, num_actions):
    from rlx.exploration import param_noise

    return param_noise.make(cfg, num_actions)


def _noisy(cfg, num_actions):
    from rlx.exploration import noisy

    return noisy.make(cfg, num_actions)


def _langevin(cfg, num_actions):
    from rlx.exploration import langevin

    return langevin.make(cfg, num_actions)


STRATEGIES = {
    "none": lambda cfg, num_actions: greedy_strategy,
    "eps": lambda cfg, num_actions: eps_greedy,
    "param": _param_noise,
    "noisy": _noisy,
    "langevin": _langevin,
}


def make(cfg, num_actions: int) -> Strategy:
    """The strategy for cfg.noise (a `--noise` name) and an env with num_actions actions."""
    if cfg.noise not in STRATEGIES:
        raise UserError(f"unknown noise '{cfg.noise}'.{did_you_mean(cfg.noise, STRATEGIES)}")
    return STRATEGIES[cfg.noise](cfg, num_actions)
