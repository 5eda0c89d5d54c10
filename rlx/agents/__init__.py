"""Agents by name (`--agent NAME`): each module has `make_train(cfg, spec) -> core.Agent`, `check(cfg)`, which
validates the loop layout it needs, `block_steps(cfg)`, the env steps of its smallest whole unit of work, and
`replay_bytes(cfg, spec)`, the replay memory of one seed. A new agent is one module built on rlx.agents.core and one line here."""

import dataclasses

from rlx.agents import dqn, pqn

AGENTS = {"dqn": dqn, "pqn": pqn}


def make_train(cfg, spec):
    """The agent cfg.agent names, built for a config and an env."""
    return AGENTS[cfg.agent].make_train(cfg, spec)


def block_steps(cfg) -> int:
    """Env steps per block of cfg's agent (one PQN rollout of all envs, one DQN target period); 0 when its settings
    are not positive (validation names them)."""
    return max(0, AGENTS[cfg.agent].block_steps(cfg))


def fit_to_blocks(cfg):
    """cfg with `steps` rounded up and `eval.every` rounded to the nearest whole number of blocks (at least one):
    the compiled loop runs whole blocks, so any --steps works with any agent. Non-positive values are left for
    validation to name."""
    block = block_steps(cfg)
    if block <= 0:
        return cfg
    steps = -(-cfg.steps // block) * block if cfg.steps > 0 else cfg.steps
    every = max(block, round(cfg.eval.every / block) * block) if cfg.eval.every > 0 else cfg.eval.every
    return dataclasses.replace(cfg, steps=steps, eval=dataclasses.replace(cfg.eval, every=every))


def block_text(cfg) -> str:
    """What one block of cfg's agent is, for messages."""
    return AGENTS[cfg.agent].BLOCK_TEXT


def replay_bytes(cfg, spec) -> int:
    """Bytes of replay memory one seed of cfg's agent holds on env `spec` (0 for an agent without replay)."""
    return AGENTS[cfg.agent].replay_bytes(cfg, spec)
