"""Agents by name (`--agent NAME`): each module has `make_train(cfg, spec) -> core.Agent` and `check(cfg)`,
which validates the loop layout it needs. A new agent is one module built on rlx.agents.core and one line here."""

from rlx.agents import dqn, pqn

AGENTS = {"dqn": dqn, "pqn": pqn}


def make_train(cfg, spec):
    """The agent cfg.agent names, built for a config and an env."""
    return AGENTS[cfg.agent].make_train(cfg, spec)
