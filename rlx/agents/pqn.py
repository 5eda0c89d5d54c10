"""PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"): no replay, no target network.

Same contract as agents.dqn (the runner cannot tell them apart). One block = a rollout of `pqn.rollout`
steps in each of `pqn.num_envs` envs with the exploration strategy, λ-returns computed backwards from
the online network's own max-Q, then `pqn.epochs` passes of `pqn.minibatches` minibatches of
0.5·(Q(s, a) − G^λ)² with RAdam. The network has LayerNorm (turned on for PQN; the paper's stabiliser).
Parameter noise adapts σ on the rollout's observations once per block.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlx import envs, exploration
from rlx.agents.dqn import (
    LOOP_SUMS,
    Agent,
    TrainState,
    diagnoser,
    episode_restarter,
    greedy_evaluator,
    make_optimizer,
)
from rlx.nets import make_q_network


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


def make_train(cfg, spec: envs.EnvSpec) -> Agent:
    """Build PQN's pure functions for a config and an env."""
    p = cfg.pqn
    n, t_len = p.num_envs, p.rollout
    strategy = exploration.make(cfg, spec.num_actions)
    net_options = {"layer_norm": True, **dict(strategy.net)}
    net = make_q_network(cfg.net, spec.obs_shape, spec.num_actions, **net_options)

    def q_apply(params, obs, key=None):
        """Q-values; a key samples fresh network noise (NoisyNets), None uses the mean weights."""
        return net.apply(params, obs, rngs=None if key is None else {"noise": key})

    tx = make_optimizer(cfg.dqn, strategy)  # dqn.optimizer (radam for PQN experiments), clipping, eps
    block_steps = n * t_len
    batch = n * t_len
    mb_size = batch // p.minibatches

    def init(key, hp):
        k_net, k_env, k_explore, key = jax.random.split(key, 4)
        params = net.init(k_net, jnp.zeros((1,) + tuple(spec.obs_shape), jnp.float32))
        obs, env_state = envs.reset_batch(spec, jax.random.split(k_env, n))
        return TrainState(
            params=params,
            target=(),  # PQN has no target network
            opt_state=tx.init(params),
            buffer=(),
            env_state=env_state,
            obs=obs,
            explore=strategy.init(k_explore, params, n),
            ep_return=jnp.zeros((n,), jnp.float32),
            solve=jnp.array([0, 0, -1], jnp.int32),
            key=key,
        )

    def rollout_step(c, i, hp, step0):
        ts, acc = c
        step = step0 + i * n
        key, k_act, k_env, k_obs = jax.random.split(ts.key, 4)
        actions, explore, ex = strategy.act(ts.explore, k_act, q_apply, ts.params, ts.obs, step, hp)
        out = envs.step_batch(spec, jax.random.split(k_env, n), ts.env_state, actions)
        reward = jnp.sign(out.reward) if spec.clip_reward else out.reward
        done = out.terminated | out.truncated
        ep_return = ts.ep_return + out.reward
        explore = strategy.observe(explore, k_obs, ts.params, done)
        transition = dict(
            obs=ts.obs,
            action=actions,
            reward=jnp.where(out.reset_step, 0.0, reward),
            next_obs=out.next_obs,
            # A host env's reset step is cut like a terminal one: its action was ignored.
            terminated=out.terminated | out.reset_step,
            truncated=out.truncated,
        )
        acc = {
            **acc,
            **{k: acc[k] + v for k, v in ex.items()},
            "acts": acc["acts"] + 1.0,
            "return_sum": acc["return_sum"] + jnp.sum(jnp.where(done, ep_return, 0.0)),
            "episodes": acc["episodes"] + jnp.sum(done).astype(jnp.float32),
        }
        ts = ts._replace(
            env_state=out.state, obs=out.obs, explore=explore, ep_return=jnp.where(done, 0.0, ep_return), key=key
        )
        return (ts, acc), transition

    def loss_fn(params, mb, key):
        q = q_apply(params, mb["obs"], key)
        q_sa = jnp.take_along_axis(q, mb["action"][:, None], axis=-1)[:, 0]
        return 0.5 * jnp.mean(jnp.square(q_sa - mb["target"])), jnp.mean(q_sa)

    def block(c, b, hp, step0):
        """One rollout, its λ-returns, then epochs x minibatches of updates (and σ adaptation)."""
        step = step0 + b * block_steps
        (ts, acc), tr = jax.lax.scan(lambda c, i: rollout_step(c, i, hp, step), c, jnp.arange(t_len))
        key, k_next, k_perm, k_adapt = jax.random.split(ts.key, 4)
        # max_a Q(s_{t+1}, a) of the clean network (noise samples would bias the target upwards)
        q_next = q_apply(ts.params, tr["next_obs"].reshape((batch,) + tr["next_obs"].shape[2:]))
        next_v = jnp.max(q_next, axis=-1).reshape(t_len, n)
        targets = lambda_returns(tr["reward"], tr["terminated"], tr["truncated"], next_v, hp.gamma, p.lam)
        flat = {
            "obs": tr["obs"].reshape((batch,) + tr["obs"].shape[2:]),
            "action": tr["action"].reshape(batch),
            "target": jax.lax.stop_gradient(targets.reshape(batch)),
        }

        def epoch(c, k):
            ts, acc = c
            k_perm, k_noise = jax.random.split(k)
            perm = jax.random.permutation(k_perm, batch)[: mb_size * p.minibatches].reshape(p.minibatches, mb_size)

            def minibatch(c, x):
                ts, acc = c
                idx, kn = x
                mb = jax.tree.map(lambda a: a[idx], flat)
                (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                    ts.params, mb, kn if strategy.train_noise else None
                )
                lr = hp.lr * (1.0 - step / cfg.steps) if cfg.dqn.lr_decay else hp.lr
                updates, opt_state = tx.update(grads, ts.opt_state, ts.params, eta=lr, key=jax.random.fold_in(kn, 1))
                params = jax.tree.map(lambda w, u: w - lr * u, ts.params, updates)
                acc = {**acc, "loss_sum": acc["loss_sum"] + loss, "q_sum": acc["q_sum"] + q_mean,
                       "updates": acc["updates"] + 1.0}  # fmt: skip
                return (ts._replace(params=params, opt_state=opt_state), acc), None

            return jax.lax.scan(minibatch, (ts, acc), (perm, jax.random.split(k_noise, p.minibatches)))[0], None

        (ts, acc), _ = jax.lax.scan(epoch, (ts._replace(key=key), acc), jax.random.split(k_perm, p.epochs))
        if strategy.adapt_every:
            # Once per rollout, on the rollout's own observations (no replay buffer to sample from).
            sample = flat["obs"][: min(batch, 256)]
            ts = ts._replace(explore=strategy.adapt(ts.explore, k_adapt, q_apply, ts.params, sample, step + block_steps, hp))
        return (ts, acc), None

    def zero_metrics(ts, hp):
        ex = jax.eval_shape(lambda: strategy.act(ts.explore, ts.key, q_apply, ts.params, ts.obs, 0, hp)[2])
        return {**{k: jnp.float32(0.0) for k in LOOP_SUMS}, **jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), ex)}

    def chunk(ts, hp, step0, num_blocks: int):
        """Run num_blocks rollouts (and their updates) starting at env step step0 (shared across seeds)."""
        (ts, m), _ = jax.lax.scan(lambda c, b: block(c, b, hp, step0), (ts, zero_metrics(ts, hp)), jnp.arange(num_blocks))
        metrics = {
            "episodes": m["episodes"],
            "return_mean": m["return_sum"] / m["episodes"],
            "loss": m["loss_sum"] / m["updates"],
            "q_mean": m["q_sum"] / m["updates"],
            "updates": m["updates"],
        }
        metrics.update({k: v / m["acts"] for k, v in m.items() if k not in LOOP_SUMS})
        return ts, metrics, ()  # no parameter snapshots (path.every is a DQN option)

    evaluate = greedy_evaluator(cfg, spec, q_apply)
    restart_episodes = episode_restarter(spec, n)

    return Agent(init, chunk, evaluate, q_apply, block_steps, restart_episodes, diagnoser(cfg, net))

