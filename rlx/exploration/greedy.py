"""No exploration (`--noise none`): always the greedy action of the current parameters."""

from __future__ import annotations

from rlx.exploration.base import Strategy


def make(cfg, num_actions: int) -> Strategy:
    """The greedy strategy (every part is the default no-op)."""
    return Strategy()
