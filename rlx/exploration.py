"""Exploration strategies, optax-style: each is a small NamedTuple of pure functions.

    init(key, params, num_envs)                       -> state
    act(state, key, q_apply, params, obs, step, hp)   -> (actions, state, metrics)
    observe(state, key, params, done)                 -> state     # per-env episode ends (e.g. resample noise)
    adapt(state, key, q_apply, params, obs, step, hp) -> (state, metrics)   # after a gradient update

`q_apply(params, obs)` gives Q-values; `step` is env steps so far for this seed; `hp` holds the batched
hyperparameters (see rlx.config). The agent calls these and never branches on the strategy's name, so
parameter noise and NoisyNets plug in here with their own state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx.errors import UserError, did_you_mean
from rlx.nets import greedy


class Strategy(NamedTuple):
    """The four pure functions of an exploration strategy."""

    init: Callable
    act: Callable
    observe: Callable
    adapt: Callable


def linear_epsilon(step, hp):
    """ε linearly from eps_start to eps_end over eps_decay_steps env steps, then flat."""
    frac = jnp.clip(step / hp.eps_decay_steps, 0.0, 1.0)
    return hp.eps_start + frac * (hp.eps_end - hp.eps_start)


def _no_state(key, params, num_envs):
    return ()


def _keep(state, *args):
    return state


def _no_adapt(state, *args):
    return state, {}


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

STRATEGIES = {"none": greedy_strategy, "eps": eps_greedy}


def make(name: str) -> Strategy:
    """The strategy for a `--noise` name."""
    if name not in STRATEGIES:
        raise UserError(f"unknown noise '{name}'.{did_you_mean(name, STRATEGIES)}")
    return STRATEGIES[name]
