"""Exploration strategies (`--noise NAME`): one file each, and one line in STRATEGIES.

Each module has `make(cfg, num_actions) -> Strategy` (rlx.exploration.base says what a Strategy is). The
registry names modules rather than importing them, so a strategy's dependencies load only when it is used.
"""

from __future__ import annotations

import importlib

from rlx.errors import UserError, did_you_mean
from rlx.exploration.base import Strategy, eps_greedy_actions, linear_epsilon

__all__ = ["STRATEGIES", "Strategy", "eps_greedy_actions", "linear_epsilon", "make"]

STRATEGIES = {
    "none": "rlx.exploration.greedy",
    "eps": "rlx.exploration.eps_greedy",
    "param": "rlx.exploration.param_noise",
    "noisy": "rlx.exploration.noisy",
    "langevin": "rlx.exploration.langevin",
}


def make(cfg, num_actions: int) -> Strategy:
    """The strategy for cfg.noise (a `--noise` name) and an env with num_actions actions."""
    if cfg.noise not in STRATEGIES:
        raise UserError(f"unknown noise '{cfg.noise}'.{did_you_mean(cfg.noise, STRATEGIES)}")
    return importlib.import_module(STRATEGIES[cfg.noise]).make(cfg, num_actions)
