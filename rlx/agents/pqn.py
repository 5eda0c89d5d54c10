"""PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"): λ-returns and epochs, no replay,
no target network.

One block = a rollout of `pqn.rollout` steps in each of `pqn.num_envs` envs with the exploration strategy,
λ-returns computed backwards from the online network's own max-Q, then `pqn.epochs` passes of
`pqn.minibatches` minibatches of 0.5·(Q(s, a) − G^λ)² (optim.name=radam is the paper's). The network has
LayerNorm (the paper's stabiliser; rlx.agents.core.q_network says who wins when a strategy sets it too).
Parameter noise adapts σ on the rollout's observations once per block.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rlx import config as C
from rlx.agents import core
from rlx.envs import EnvSpec

BLOCK_TEXT = "one rollout, pqn.num_envs x pqn.rollout"


def block_steps(cfg) -> int:
    """Env steps per block: one rollout of every env."""
    return cfg.pqn.num_envs * cfg.pqn.rollout


def replay_bytes(cfg, spec: EnvSpec) -> int:
    """PQN learns from its own rollouts: no replay."""
    return 0


def check(cfg) -> None:
    """PQN's settings: positive sizes, λ in [0, 1], no DQN-only options. Whole rollouts per chunk and per run need no
    check: Config.check fits steps and eval.every to block_steps first."""
    q, need = cfg.pqn, C.need
    need(cfg.path.every_updates == 0, "path.every_updates (policy-path snapshots) is a DQN option (--agent dqn).",
         {"path.every_updates": 0})
    need(not cfg.pptb.enabled, "pptb is a DQN option (--agent dqn).", {"pptb.enabled": False})
    for name in ("pqn.num_envs", "pqn.rollout", "pqn.epochs", "pqn.minibatches"):
        C.need_range(cfg, name, lambda v: v > 0, "positive")
    C.need_range(cfg, "pqn.lam", lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
    block = block_steps(cfg)
    need(q.minibatches <= block, f"pqn.minibatches ({q.minibatches}) cannot exceed pqn.num_envs * pqn.rollout ({block}).",
         {"pqn.minibatches": min(C.default("pqn.minibatches"), block)})


def lambda_returns(reward, terminated, truncated, next_value, gamma, lam):
    """G_t = r_t + γ·(1 − term_t)·[(1 − λ)·maxQ(s_{t+1}) + λ·G_{t+1}], cut at episode ends; time-major arrays.

    A truncated step bootstraps from maxQ(s_{t+1}) alone (its next observation is the true one), and the
    last step of the rollout has no G_{t+1}, so it bootstraps fully too.
    """
    def body(g_next, x):
        r, term, trunc, v, last = x
        mix = jnp.where(trunc | last, v, (1.0 - lam) * v + lam * g_next)
        g = r + gamma * (1.0 - term.astype(jnp.float32)) * mix
        return g, g

    t_len = reward.shape[0]
    last = jnp.broadcast_to((jnp.arange(t_len) == t_len - 1)[:, None], reward.shape)
    xs = (reward, terminated, truncated, next_value, last)
    return jax.lax.scan(body, next_value[-1], xs, reverse=True)[1]


class PQN(NamedTuple):
    """A built PQN: the shared parts and its rollout size."""

    parts: core.Parts
    rollout: int  # env steps per env per block
    batch: int  # transitions per block: num_envs * rollout


def make_train(cfg, spec: EnvSpec) -> core.Agent:
    """Build PQN's pure functions for a config and an env."""
    p = cfg.pqn
    parts = core.build(cfg, spec, p.num_envs, agent_options={"layer_norm": True})
    a = PQN(parts, p.rollout, p.num_envs * p.rollout)
    return core.Agent(
        init=lambda key, hp: core.init_state(parts, key),
        chunk=functools.partial(chunk, a),
        evaluate=core.greedy_evaluator(parts),
        block_steps=a.batch,
        restart_episodes=core.episode_restarter(parts),
        diagnose=core.diagnoser(parts),
    )


def rollout(a: PQN, c, hp, step):
    """pqn.rollout env steps of all envs from env step `step`; returns the carry and the time-major transitions."""
    n = a.parts.num_envs

    def one(c, i):
        ts, sums, tr = core.env_step(a.parts, *c, hp, step + i * n)
        return (ts, sums), tr

    return jax.lax.scan(one, c, jnp.arange(a.rollout))


def targets(a: PQN, ts, tr, hp):
    """The rollout flattened to one batch with its λ-returns (from the clean network: noise samples would bias
    the max upwards)."""
    n, t_len, batch = a.parts.num_envs, a.rollout, a.batch
    q_next = a.parts.q_apply(ts.params, tr["next_obs"].reshape((batch,) + tr["next_obs"].shape[2:]))
    next_v = jnp.max(q_next, axis=-1).reshape(t_len, n)
    g = lambda_returns(tr["reward"], tr["terminated"], tr["truncated"], next_v, hp.gamma, a.parts.cfg.pqn.lam)
    return {
        "obs": tr["obs"].reshape((batch,) + tr["obs"].shape[2:]),
        "action": tr["action"].reshape(batch),
        "target": jax.lax.stop_gradient(g.reshape(batch)),
    }


def loss_fn(a: PQN, params, mb, key):
    """0.5·(Q(s, a) − G^λ)² over a minibatch; returns (loss, mean Q(s, a))."""
    q = a.parts.q_apply(params, mb["obs"], key)
    q_sa = jnp.take_along_axis(q, mb["action"][:, None], axis=-1)[:, 0]
    return 0.5 * jnp.mean(jnp.square(q_sa - mb["target"])), jnp.mean(q_sa)


def epoch(a: PQN, c, k, flat, hp, step):
    """One pass over the block's transitions in pqn.minibatches shuffled minibatches."""
    mbs = a.parts.cfg.pqn.minibatches
    mb_size = a.batch // mbs
    k_perm, k_noise = jax.random.split(k)
    perm = jax.random.permutation(k_perm, a.batch)[: mb_size * mbs].reshape(mbs, mb_size)

    def minibatch(c, x):
        ts, sums = c
        idx, kn = x
        mb = jax.tree.map(lambda v: v[idx], flat)
        grad_fn = jax.value_and_grad(functools.partial(loss_fn, a), has_aux=True)
        (loss, q_mean), grads = grad_fn(ts.params, mb, kn if a.parts.strategy.train_noise else None)
        params, opt_state = core.apply_update(a.parts, ts.params, ts.opt_state, grads, hp, step, jax.random.fold_in(kn, 1))
        return (ts._replace(params=params, opt_state=opt_state), core.add_update(sums, loss, q_mean)), None

    return jax.lax.scan(minibatch, c, (perm, jax.random.split(k_noise, mbs)))[0], None


def block(a: PQN, c, b, hp, step0):
    """One rollout, its λ-returns, then epochs x minibatches of updates (and σ adaptation)."""
    strategy, epochs = a.parts.strategy, a.parts.cfg.pqn.epochs
    step = step0 + b * a.batch
    (ts, sums), tr = rollout(a, c, hp, step)
    key, _, k_perm, k_adapt = jax.random.split(ts.key, 4)
    flat = targets(a, ts, tr, hp)
    c = (ts._replace(key=key), sums)
    (ts, sums), _ = jax.lax.scan(lambda c, k: epoch(a, c, k, flat, hp, step), c, jax.random.split(k_perm, epochs))
    if strategy.adapt_every:
        # Once per rollout, on the rollout's own observations (no replay buffer to sample from).
        sample = flat["obs"][: min(a.batch, 256)]
        explore = strategy.adapt(ts.explore, k_adapt, a.parts.q_apply, ts.params, sample, step + a.batch, hp)
        ts = ts._replace(explore=explore)
    return (ts, sums), None


def chunk(a: PQN, ts, hp, step0, num_blocks: int):
    """Run num_blocks rollouts (and their updates) starting at env step step0 (shared across seeds)."""
    c0 = (ts, core.zero_sums(a.parts, ts, hp))
    ts, sums = jax.lax.fori_loop(0, num_blocks, lambda b, c: block(a, c, b, hp, step0)[0], c0)
    return ts, {**core.loop_metrics(sums), **core.explore_metrics(sums)}, ()  # no snapshots: a DQN option
