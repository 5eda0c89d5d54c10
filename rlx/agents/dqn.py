"""DQN (Double DQN by default) as pure functions: `make_train(cfg, spec)` -> Agent(init, chunk, evaluate).

The runner calls `jax.jit(jax.vmap(agent.chunk, in_axes=(0, 0, None, None)))` over seeds: the state and
hyperparameters are per seed, the step counter is shared. Because the step counter is not batched, the
choice "collect only" vs "collect and learn" is a real `lax.cond` per target period rather than a select
that computes both branches, and the loop needs no per-step branching at all:

    chunk = scan over target periods (blocks)
      block = cond(learning, train_block, collect_block)
        train_block = scan over units, then target update
          unit = k env steps (all envs) + u gradient updates   (k*num_envs == u*train_every)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlx import envs, exploration, replay
from rlx.nets import greedy, make_q_network


class HParams(NamedTuple):
    """Hyperparameters that enter the compiled program as arrays (vmappable; see rlx.config.HPARAMS)."""

    lr: jax.Array
    gamma: jax.Array
    tau: jax.Array
    eps_start: jax.Array
    eps_end: jax.Array
    eps_decay_steps: jax.Array


def hparams(cfg) -> HParams:
    """The batched hyperparameters of a config, as float32 scalars."""
    d, e = cfg.dqn, cfg.explore
    vals = (d.lr, d.gamma, d.tau, e.eps_start, e.eps_end, e.eps_decay_steps)
    return HParams(*(jnp.asarray(v, jnp.float32) for v in vals))


class TrainState(NamedTuple):
    """Everything one seed carries between chunks (all arrays: checkpointable as is)."""

    params: Any
    target: Any
    opt_state: Any
    buffer: replay.Buffer
    env_state: Any
    obs: jax.Array
    explore: Any
    ep_return: jax.Array  # running undiscounted return of each env's current episode
    key: jax.Array


class Agent(NamedTuple):
    """Pure functions of one agent; see the module docstring."""

    init: Callable  # (key, hp) -> TrainState
    chunk: Callable  # (state, hp, step0, num_blocks) -> (state, metrics); num_blocks static
    evaluate: Callable  # (params, key) -> returns of cfg.eval.episodes greedy episodes
    q_apply: Callable  # (params, obs) -> Q-values
    block_steps: int  # env steps per block (= target period)


def make_optimizer(d) -> optax.GradientTransformation:
    """Gradient clipping plus the optimizer's scaling; the (batched, decaying) lr is applied by the agent."""
    scale = {
        "adam": lambda: optax.scale_by_adam(eps=d.adam_eps),
        "radam": lambda: optax.scale_by_radam(eps=d.adam_eps),
        "rmsprop": lambda: optax.scale_by_rms(decay=0.95, eps=d.adam_eps),
        "sgd": optax.identity,
    }[d.optimizer]()
    return optax.chain(optax.clip_by_global_norm(d.max_grad_norm), scale)


def td_target(reward, terminated, next_value, gamma):
    """One-step target: bootstraps unless the transition reached a true terminal state.

    A transition cut by the time limit is stored with terminated=False and its real next observation,
    so it bootstraps; only termination zeroes the future.
    """
    return reward + gamma * (1.0 - terminated.astype(jnp.float32)) * next_value


def q_loss(params, target, batch, gamma, q_apply, double: bool = True, loss: str = "huber"):
    """TD loss on a replay batch; returns (loss, mean Q(s, a)). Double DQN picks a' with the online net."""
    obs, next_obs = batch["obs"], batch["next_obs"]
    if double:
        # One forward pass for Q(s) and Q(s'): fewer, larger ops are faster than two small ones.
        q_both = q_apply(params, jnp.concatenate([obs, next_obs]))
        q, q_next_online = q_both[: obs.shape[0]], jax.lax.stop_gradient(q_both[obs.shape[0] :])
        next_a = greedy(q_next_online)
        next_v = jnp.take_along_axis(q_apply(target, next_obs), next_a[:, None], axis=-1)[:, 0]
    else:
        q = q_apply(params, obs)
        next_v = jnp.max(q_apply(target, next_obs), axis=-1)
    y = jax.lax.stop_gradient(td_target(batch["reward"], batch["terminated"], next_v, gamma))
    q_sa = jnp.take_along_axis(q, batch["action"][:, None], axis=-1)[:, 0]
    err = q_sa - y
    per = optax.huber_loss(err, delta=1.0) if loss == "huber" else 0.5 * jnp.square(err)
    return jnp.mean(per), jnp.mean(q_sa)


def make_train(cfg, spec: envs.EnvSpec) -> Agent:
    """Build the agent's pure functions for a config and an env."""
    d = cfg.dqn
    n = d.num_envs
    net = make_q_network(cfg.net, spec.obs_shape, spec.num_actions)
    q_apply = net.apply
    tx = make_optimizer(d)
    strategy = exploration.make(cfg.noise)
    iters_per_unit = max(1, d.train_every // n)
    updates_per_unit = max(1, n // d.train_every)
    unit_steps = iters_per_unit * n
    units_per_block = d.target_every // unit_steps
    block_iters = d.target_every // n
    total_steps = cfg.steps

    env_step = jax.vmap(lambda k, s, a: envs.step(spec, k, s, a))
    env_reset = jax.vmap(lambda k: envs.reset(spec, k))

    def init(key, hp):
        k_net, k_env, k_explore, key = jax.random.split(key, 4)
        dummy = jnp.zeros((1,) + tuple(spec.obs_shape), jnp.float32)
        params = net.init(k_net, dummy)
        obs, env_state = env_reset(jax.random.split(k_env, n))
        example = dict(
            obs=obs[0], action=jnp.int32(0), reward=jnp.float32(0), next_obs=obs[0], terminated=jnp.bool_(False)
        )
        return TrainState(
            params=params,
            target=params,
            opt_state=tx.init(params),
            buffer=replay.init(example, d.buffer_size),
            env_state=env_state,
            obs=obs,
            explore=strategy.init(k_explore, params, n),
            ep_return=jnp.zeros((n,), jnp.float32),
            key=key,
        )

    def act_and_step(ts: TrainState, hp, step):
        """One env step of all envs; returns the new state and (finished-return sum, finished count)."""
        key, k_act, k_env, k_obs = jax.random.split(ts.key, 4)
        actions, explore, ex_metrics = strategy.act(ts.explore, k_act, q_apply, ts.params, ts.obs, step, hp)
        out = env_step(jax.random.split(k_env, n), ts.env_state, actions)
        buffer = replay.add(
            ts.buffer,
            dict(obs=ts.obs, action=actions, reward=out.reward, next_obs=out.next_obs, terminated=out.terminated),
        )
        done = out.terminated | out.truncated
        ep_return = ts.ep_return + out.reward
        finished = (jnp.sum(jnp.where(done, ep_return, 0.0)), jnp.sum(done).astype(jnp.float32))
        explore = strategy.observe(explore, k_obs, ts.params, done)
        ts = ts._replace(
            buffer=buffer,
            env_state=out.state,
            obs=out.obs,
            explore=explore,
            ep_return=jnp.where(done, 0.0, ep_return),
            key=key,
        )
        return ts, finished, ex_metrics

    def update(ts: TrainState, hp, step):
        key, k_sample = jax.random.split(ts.key)
        batch = replay.sample(ts.buffer, k_sample, d.batch_size)
        (loss, q_mean), grads = jax.value_and_grad(q_loss, has_aux=True)(
            ts.params, ts.target, batch, hp.gamma, q_apply, d.double, d.loss
        )
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params)
        lr = hp.lr * (1.0 - step / total_steps) if d.lr_decay else hp.lr
        params = jax.tree.map(lambda p, u: p - lr * u, ts.params, updates)
        ts = ts._replace(params=params, opt_state=opt_state, key=key)
        ts, ad_metrics = _adapt(ts, hp, step, batch["obs"])
        return ts, (loss, q_mean)

    def _adapt(ts, hp, step, obs):
        key, k = jax.random.split(ts.key)
        explore, metrics = strategy.adapt(ts.explore, k, q_apply, ts.params, obs, step, hp)
        return ts._replace(explore=explore, key=key), metrics

    def unit(ts, hp, step):
        """iters_per_unit env steps, then updates_per_unit gradient updates."""

        def one_iter(c, i):
            ts, fin = c
            ts, f, ex = act_and_step(ts, hp, step + i * n)
            return (ts, (fin[0] + f[0], fin[1] + f[1])), ex

        (ts, fin), ex = jax.lax.scan(one_iter, (ts, (0.0, 0.0)), jnp.arange(iters_per_unit))

        def one_update(ts, j):
            return update(ts, hp, step + unit_steps)

        ts, (loss, q_mean) = jax.lax.scan(one_update, ts, jnp.arange(updates_per_unit))
        return ts, fin, ex, jnp.mean(loss), jnp.mean(q_mean)

    def train_block(ts, hp, step):
        def body(ts, u):
            ts, fin, ex, loss, q = unit(ts, hp, step + u * unit_steps)
            return ts, (fin, ex, loss, q)

        ts, (fin, ex, loss, q) = jax.lax.scan(body, ts, jnp.arange(units_per_block))
        tau = hp.tau
        target = jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, ts.params, ts.target)
        ts = ts._replace(target=target)
        ex_last = jax.tree.map(lambda x: x[-1, -1], ex)
        return ts, _block_metrics(fin, ex_last, jnp.sum(loss), jnp.sum(q), jnp.float32(units_per_block))

    def collect_block(ts, hp, step):
        def body(ts, i):
            ts, f, ex = act_and_step(ts, hp, step + i * n)
            return ts, (f, ex)

        ts, (fin, ex) = jax.lax.scan(body, ts, jnp.arange(block_iters))
        ex_last = jax.tree.map(lambda x: x[-1], ex)
        zero = jnp.float32(0.0)
        return ts, _block_metrics(fin, ex_last, zero, zero, zero)

    def _block_metrics(fin, ex, loss_sum, q_sum, n_updates):
        return dict(
            return_sum=jnp.sum(fin[0]),
            episodes=jnp.sum(fin[1]),
            loss_sum=loss_sum,
            q_sum=q_sum,
            updates=n_updates,
            **ex,
        )

    def chunk(ts, hp, step0, num_blocks: int):
        """Run num_blocks target periods starting at env step step0 (shared across seeds)."""

        def body(ts, b):
            step = step0 + b * d.target_every
            learning = step >= d.learning_starts
            return jax.lax.cond(learning, train_block, collect_block, ts, hp, step)

        ts, m = jax.lax.scan(body, ts, jnp.arange(num_blocks))
        episodes = jnp.sum(m["episodes"])
        updates = jnp.sum(m["updates"])
        metrics = {
            "episodes": episodes,
            "return_mean": jnp.sum(m["return_sum"]) / episodes,  # NaN when no episode finished
            "loss": jnp.sum(m["loss_sum"]) / updates,
            "q_mean": jnp.sum(m["q_sum"]) / updates,
        }
        metrics.update({k: v[-1] for k, v in m.items() if k not in ("return_sum", "episodes", "loss_sum", "q_sum", "updates")})
        return ts, metrics

    def evaluate(params, key):
        """Greedy returns of cfg.eval.episodes episodes on the clean parameters (ε = 0)."""
        e = cfg.eval.episodes
        k_reset, key = jax.random.split(key)
        obs, state = env_reset(jax.random.split(k_reset, e))

        def cond(c):
            t, _, _, _, alive, _ = c
            return (t < spec.max_steps) & jnp.any(alive)

        def body(c):
            t, obs, state, ret, alive, key = c
            key, k = jax.random.split(key)
            out = env_step(jax.random.split(k, e), state, greedy(q_apply(params, obs)))
            ret = ret + jnp.where(alive, out.reward, 0.0)
            alive = alive & ~(out.terminated | out.truncated)
            return t + 1, out.obs, out.state, ret, alive, key

        init = (0, obs, state, jnp.zeros((e,), jnp.float32), jnp.ones((e,), bool), key)
        return jax.lax.while_loop(cond, body, init)[3]

    return Agent(init, chunk, evaluate, q_apply, d.target_every)
