"""ε-greedy (`--noise eps`): a uniform action with probability ε, ε following the explore.* schedule."""

from __future__ import annotations

from rlx.exploration.base import Strategy, eps_greedy_actions, linear_epsilon


def _act(state, key, q_apply, params, obs, step, hp):
    eps = linear_epsilon(step, hp)
    return eps_greedy_actions(key, q_apply(params, obs), eps), state, {"eps": eps}


def make(cfg, num_actions: int) -> Strategy:
    """The ε-greedy strategy; it reports ε as the metric `eps`."""
    return Strategy(act=_act)
