"""DQN (Double DQN by default) as pure functions: `make_train(cfg, spec)` -> Agent(init, chunk, evaluate).

The runner calls `jax.jit(jax.vmap(agent.chunk, in_axes=(0, 0, None, None)))` over seeds: the state and
hyperparameters are per seed, the step counter is shared. Because the step counter is not batched, every
schedule decision taken from it ("learning yet?", "adapt now?", "episode over?") is a real `lax.cond`
under vmap rather than a select that computes both branches:

    chunk = scan over blocks (one target period each)
      block = scan over units, then the target update
        unit = k env steps (all envs) + cond(learning: u gradient updates [+ cond(adapt)])
               [+ cond(episode ended: greedy check)]            (k * num_envs == u * train_every)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlx import envs, exploration, pptb, replay
from rlx.nets import greedy, make_q_network

# Running sums the compiled loop carries; every other metric comes from the strategy and is averaged.
LOOP_SUMS = ("return_sum", "episodes", "loss_sum", "q_sum", "updates", "acts", "pptb_count", "pptb_shift", "pptb_k")


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
    solve: jax.Array  # int32 [greedy-optimal streak, episodes, episode when solved or -1] (fixed-length envs)
    key: jax.Array
    pptb: Any = ()  # rlx.pptb.PPTBState when pptb.enabled


class Agent(NamedTuple):
    """Pure functions of one agent; see the module docstring."""

    init: Callable  # (key, hp) -> TrainState
    # (state, hp, step0, num_blocks) -> (state, metrics, snapshots); num_blocks static. snapshots: the params
    # every path.every updates, stacked on a leading axis (() when path.every = 0)
    chunk: Callable
    evaluate: Callable  # (params, key) -> returns of cfg.eval.episodes greedy episodes
    q_apply: Callable  # (params, obs) -> Q-values
    block_steps: int  # env steps per block (= target period)
    restart_episodes: Callable  # (state, key) -> state with every env at the start of a new episode
    diagnose: Callable  # (params, probe_obs) -> dict of representation-health scalars (rlx.diagnostics)


def make_optimizer(d, strategy=None) -> optax.GradientTransformationExtraArgs:
    """Gradient clipping plus the optimizer's scaling, wrapped by the strategy's optimizer if it has one; the
    (batched, decaying) lr is applied by the agent, which passes it (eta) and a key to every update."""
    tx = _base_optimizer(d)
    if strategy is not None and strategy.optimizer is not None:
        tx = strategy.optimizer(tx)
    return optax.with_extra_args_support(tx)


def _base_optimizer(d) -> optax.GradientTransformation:
    scale = {
        "adam": lambda: optax.scale_by_adam(eps=d.adam_eps),
        "radam": lambda: optax.scale_by_radam(eps=d.adam_eps),
        "rmsprop": lambda: optax.scale_by_rms(decay=0.95, eps=d.adam_eps),
        "sgd": optax.identity,
    }[d.optimizer]()
    if d.max_grad_norm <= 0:  # 0 turns clipping off (the anchor does not clip)
        return scale
    return optax.chain(optax.clip_by_global_norm(d.max_grad_norm), scale)


def td_target(reward, terminated, next_value, gamma):
    """One-step target: bootstraps unless the transition reached a true terminal state.

    A transition cut by the time limit is stored with terminated=False and its real next observation,
    so it bootstraps; only termination zeroes the future.
    """
    return reward + gamma * (1.0 - terminated.astype(jnp.float32)) * next_value


def q_loss(params, target, batch, gamma, q_apply, double: bool = True, loss: str = "huber", key=None):
    """TD loss on a replay batch; returns (loss, mean Q(s, a)). Double DQN picks a' with the online net.

    With a key, each pass (online Q(s), target Q(s'), online argmax over s') gets independent noise.
    """
    obs, next_obs = batch["obs"], batch["next_obs"]
    k_online, k_target, k_argmax = (None,) * 3 if key is None else jax.random.split(key, 3)
    q_next_target = q_apply(target, next_obs, k_target)
    if double:
        # Separate passes: one concatenated Q(s)+Q(s') pass measured 2x slower on CPU, since the
        # backward pass then runs over twice the rows.
        next_a = greedy(jax.lax.stop_gradient(q_apply(params, next_obs, k_argmax)))
        next_v = jnp.take_along_axis(q_next_target, next_a[:, None], axis=-1)[:, 0]
    else:
        next_v = jnp.max(q_next_target, axis=-1)
    q = q_apply(params, obs, k_online)
    y = jax.lax.stop_gradient(td_target(batch["reward"], batch["terminated"], next_v, gamma))
    q_sa = jnp.take_along_axis(q, batch["action"][:, None], axis=-1)[:, 0]
    err = q_sa - y
    per = optax.huber_loss(err, delta=1.0) if loss == "huber" else 0.5 * jnp.square(err)
    return jnp.mean(per), jnp.mean(q_sa)


def make_train(cfg, spec: envs.EnvSpec) -> Agent:
    """Build the agent's pure functions for a config and an env."""
    d = cfg.dqn
    n = d.num_envs
    strategy = exploration.make(cfg, spec.num_actions)
    net = make_q_network(cfg.net, spec.obs_shape, spec.num_actions, **dict(strategy.net))

    def q_apply(params, obs, key=None):
        """Q-values; a key samples fresh network noise (NoisyNets), None uses the mean weights."""
        return net.apply(params, obs, rngs=None if key is None else {"noise": key})

    tx = make_optimizer(d, strategy)
    iters_per_unit = max(1, d.train_every // n)
    updates_per_unit = max(1, n // d.train_every)
    unit_steps = iters_per_unit * n
    units_per_block = d.target_every // unit_steps
    track_solve = spec.optimal_return is not None
    total_steps = cfg.steps
    updates_per_block = d.target_every // d.train_every
    # Parameter snapshots (path.every) and PPTB events happen at block ends, every so many blocks.
    snap_blocks = cfg.path.every // updates_per_block
    pb = cfg.pptb
    pptb_snap_blocks = (pb.every // pb.window) // updates_per_block if pb.enabled else 0
    pptb_apply_blocks = pb.every // updates_per_block

    def env_step(keys, state, actions):
        return envs.step_batch(spec, keys, state, actions)

    def env_reset(keys):
        return envs.reset_batch(spec, keys)

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
            solve=jnp.array([0, 0, -1], jnp.int32),
            key=key,
            pptb=pptb.init(params, pb.window) if pb.enabled else (),
        )

    def act_and_step(ts: TrainState, hp, step):
        """One env step of all envs; returns the new state and (finished-return sum, finished count)."""
        key, k_act, k_env, k_obs = jax.random.split(ts.key, 4)
        actions, explore, ex_metrics = strategy.act(ts.explore, k_act, q_apply, ts.params, ts.obs, step, hp)
        out = env_step(jax.random.split(k_env, n), ts.env_state, actions)
        # A host env's reset step (see envs.atari) is stored as terminal with reward 0: its "action" was
        # ignored, so it only teaches Q(final observation) = 0, which no target ever bootstraps from.
        learn_reward = jnp.sign(out.reward) if spec.clip_reward else out.reward
        buffer = replay.add(
            ts.buffer,
            dict(
                obs=ts.obs,
                action=actions,
                reward=jnp.where(out.reset_step, 0.0, learn_reward),
                next_obs=out.next_obs,
                terminated=out.terminated | out.reset_step,
            ),
        )
        done = out.terminated | out.truncated  # never set on a reset step
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
        key, k_sample, k_noise, k_opt = jax.random.split(ts.key, 4)
        batch = replay.sample(ts.buffer, k_sample, d.batch_size)
        (loss, q_mean), grads = jax.value_and_grad(q_loss, has_aux=True)(
            ts.params, ts.target, batch, hp.gamma, q_apply, d.double, d.loss, k_noise if strategy.train_noise else None
        )
        lr = hp.lr * (1.0 - step / total_steps) if d.lr_decay else hp.lr
        updates, opt_state = tx.update(grads, ts.opt_state, ts.params, eta=lr, key=k_opt)
        params = jax.tree.map(lambda p, u: p - lr * u, ts.params, updates)
        ts = ts._replace(params=params, opt_state=opt_state, key=key)
        return ts, (loss, q_mean), batch["obs"]

    def adapt(ts, hp, step, obs):
        key, k = jax.random.split(ts.key)
        return ts._replace(explore=strategy.adapt(ts.explore, k, q_apply, ts.params, obs, step, hp), key=key)

    # Scan bodies carry running sums instead of stacking per-step outputs: stacked outputs under vmap
    # made each step cost O(scan length) (measured: 36 us/step at 50 steps per block, 364 at 500).
    def act_acc(ts, acc, hp, step):
        ts, (ret, eps_done), ex = act_and_step(ts, hp, step)
        ex_sums = {k: acc[k] + v for k, v in ex.items()}  # strategy metrics: chunk means, see chunk()
        acc = {**acc, **ex_sums, "acts": acc["acts"] + 1.0}
        return ts, {**acc, "return_sum": acc["return_sum"] + ret, "episodes": acc["episodes"] + eps_done}

    def update_acc(ts, acc, hp, step):
        ts, (loss, q_mean), obs = update(ts, hp, step)
        acc = {**acc, "loss_sum": acc["loss_sum"] + loss, "q_sum": acc["q_sum"] + q_mean, "updates": acc["updates"] + 1.0}
        return ts, acc, obs

    def unit(c, u, hp, step0):
        """iters_per_unit env steps, then updates_per_unit gradient updates once learning has started."""
        ts, acc = c
        step = step0 + u * unit_steps
        if iters_per_unit == 1:
            ts, acc = act_acc(ts, acc, hp, step)
        else:
            ts, acc = jax.lax.fori_loop(0, iters_per_unit, lambda i, c: act_acc(*c, hp, step + i * n), (ts, acc))

        if track_solve:
            # Episodes last exactly max_steps env iterations in every env, so "an episode just ended" depends
            # only on the shared step counter: a real branch, taken once per episode.
            it0, it1 = step // n, step // n + iters_per_unit
            ended = it1 // spec.max_steps > it0 // spec.max_steps
            ts = jax.lax.cond(ended, greedy_episode_check, lambda ts: ts, ts)

        def learn(ts, acc):
            for _ in range(updates_per_unit):  # a few at most: num_envs / train_every
                ts, acc, obs = update_acc(ts, acc, hp, step + unit_steps)
            if strategy.adapt_every:
                # Adapt when this unit crossed a multiple of adapt_every env steps (shared step: a real branch).
                crossed = (step + unit_steps) // strategy.adapt_every > step // strategy.adapt_every
                ts = jax.lax.cond(crossed, lambda ts: adapt(ts, hp, step + unit_steps, obs), lambda ts: ts, ts)
            return ts, acc

        # `step` is shared by all seeds (not batched), so under vmap this stays a real branch.
        ts, acc = jax.lax.cond(step >= d.learning_starts, learn, lambda ts, acc: (ts, acc), ts, acc)
        return (ts, acc), None

    def block(c, b, hp, step0):
        """One target period: units of acting and learning, then the target update."""
        step = step0 + b * d.target_every
        (ts, acc), _ = jax.lax.scan(lambda c, u: unit(c, u, hp, step), c, jnp.arange(units_per_block))
        tau = hp.tau
        target = jax.tree.map(lambda p, t: tau * p + (1.0 - tau) * t, ts.params, ts.target)
        ts = ts._replace(target=target)
        if pb.enabled:
            ts, acc = pptb_event(ts, acc, step)
        return (ts, acc), None

    def pptb_event(ts, acc, step):
        """At the end of the block that started at env step `step`: maybe snapshot, maybe trim and boost."""
        done = (step + d.target_every) // d.target_every  # blocks finished so far (shared: real branches)

        def take(ts, acc):
            ring = pptb.snapshot(ts.pptb, ts.params)
            # Apply once the whole window was taken after learning started (a frozen path has nothing to trim).
            window_start = (done - (pb.window - 1) * pptb_snap_blocks) * d.target_every
            ready = (done % pptb_apply_blocks == 0) & (window_start > d.learning_starts)

            def apply(ts, acc):
                params, ring2, stats = pptb.apply(ring, ts.params, cfg)
                acc = {**acc, "pptb_count": acc["pptb_count"] + 1.0, "pptb_shift": acc["pptb_shift"] + stats["shift"],
                       "pptb_k": acc["pptb_k"] + stats["k_mean"]}  # fmt: skip
                return ts._replace(params=params, pptb=ring2), acc

            return jax.lax.cond(ready, apply, lambda ts, acc: (ts._replace(pptb=ring), acc), ts, acc)

        return jax.lax.cond(done % pptb_snap_blocks == 0, take, lambda ts, acc: (ts, acc), ts, acc)

    def greedy_episode_check(ts):
        """After an episode: one greedy rollout with the clean parameters; track the optimal streak."""
        key, k = jax.random.split(ts.key)
        ret = greedy_return(ts.params, k)
        streak, episodes, solved_at = ts.solve[0], ts.solve[1] + n, ts.solve[2]
        streak = jnp.where(ret >= spec.optimal_return - 1e-4, streak + 1, 0)
        solved_at = jnp.where((solved_at < 0) & (streak >= cfg.eval.solve_streak), episodes, solved_at)
        return ts._replace(solve=jnp.stack([streak, episodes, solved_at]).astype(jnp.int32), key=key)

    def greedy_return(params, key):
        """Return of one greedy episode of fixed length max_steps."""
        obs, state = envs.reset(spec, key)

        def body(c, k):
            obs, state, ret = c
            out = envs.step(spec, k, state, greedy(q_apply(params, obs[None]))[0])
            return (out.obs, out.state, ret + out.reward), None

        return jax.lax.scan(body, (obs, state, 0.0), jax.random.split(key, spec.max_steps))[0][2]

    def zero_metrics(ts, hp):
        ex = jax.eval_shape(lambda: act_and_step(ts, hp, 0)[2])
        return {**{k: jnp.float32(0.0) for k in LOOP_SUMS}, **jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), ex)}

    def chunk(ts, hp, step0, num_blocks: int):
        """Run num_blocks target periods starting at env step step0 (shared across seeds)."""
        c0 = (ts, zero_metrics(ts, hp))
        if snap_blocks:
            # Scan over snapshot periods, each a scan over its blocks, stacking the params at each period's end.
            def period(c, j):
                c, _ = jax.lax.scan(lambda c, i: block(c, j * snap_blocks + i, hp, step0), c, jnp.arange(snap_blocks))
                return c, c[0].params

            (ts, m), snaps = jax.lax.scan(period, c0, jnp.arange(num_blocks // snap_blocks))
        else:
            (ts, m), _ = jax.lax.scan(lambda c, i: block(c, i, hp, step0), c0, jnp.arange(num_blocks))
            snaps = ()
        metrics = {
            "episodes": m["episodes"],
            "return_mean": m["return_sum"] / m["episodes"],  # NaN when no episode finished
            "loss": m["loss_sum"] / m["updates"],  # NaN before learning starts
            "q_mean": m["q_sum"] / m["updates"],
        }
        metrics["updates"] = m["updates"]
        if pb.enabled:
            metrics["pptb_applied"] = m["pptb_count"]
            metrics["pptb_shift"] = m["pptb_shift"] / m["pptb_count"]  # NaN in chunks without an application
            metrics["pptb_k"] = m["pptb_k"] / m["pptb_count"]
        if track_solve:
            metrics["greedy_streak"], metrics["solved_at_episode"] = ts.solve[0], ts.solve[2]
        metrics.update({k: v / m["acts"] for k, v in m.items() if k not in LOOP_SUMS})  # strategy metrics
        return ts, metrics, snaps

    evaluate = greedy_evaluator(cfg, spec, q_apply)
    restart_episodes = episode_restarter(spec, n)

    return Agent(init, chunk, evaluate, q_apply, d.target_every, restart_episodes, diagnoser(cfg, net))


def diagnoser(cfg, net) -> Callable:
    """diagnose(params, obs): rlx.diagnostics.measure of the network's sown hidden layers on a probe batch."""
    from rlx import diagnostics

    def order(name):  # convolutions first, then the hidden Dense layers, each by index
        return (not name.startswith("c"), int(name.lstrip("ch")))

    def diagnose(params, obs):
        _, state = net.apply(params, obs, mutable=["intermediates"])
        sown = {k: v[0] for k, v in state["intermediates"].items() if isinstance(v, tuple)}
        layers = {k: sown[k] for k in sorted((k for k in sown if k[0] in "ch"), key=order)}
        saturating = {k.removeprefix("tanh_"): v for k, v in sown.items() if k.startswith("tanh_")}
        return diagnostics.measure(layers, saturating, delta=cfg.diag.delta, eps=cfg.diag.eps)

    return diagnose


def greedy_evaluator(cfg, spec: envs.EnvSpec, q_apply) -> Callable:
    """evaluate(params, key): greedy returns of cfg.eval.episodes episodes on the clean parameters (ε = 0)."""
    e = cfg.eval.episodes

    def evaluate(params, key):
        k_reset, key = jax.random.split(key)
        obs, state = envs.reset_batch(spec, jax.random.split(k_reset, e), "eval")

        def cond(c):
            t, _, _, _, alive, _ = c
            return (t < spec.max_steps) & jnp.any(alive)

        def body(c):
            t, obs, state, ret, alive, key = c
            key, k = jax.random.split(key)
            out = envs.step_batch(spec, jax.random.split(k, e), state, greedy(q_apply(params, obs)), "eval")
            ret = ret + jnp.where(alive, out.reward, 0.0)
            alive = alive & ~(out.terminated | out.truncated)
            return t + 1, out.obs, out.state, ret, alive, key

        init = (0, obs, state, jnp.zeros((e,), jnp.float32), jnp.ones((e,), bool), key)
        return jax.lax.while_loop(cond, body, init)[3]

    return evaluate


def episode_restarter(spec: envs.EnvSpec, n: int) -> Callable:
    """restart(state, key): every env starts a new episode (host envs lose their emulators with the process)."""

    def restart(ts: TrainState, key):
        obs, env_state = envs.reset_batch(spec, jax.random.split(key, n))
        return ts._replace(obs=obs, env_state=env_state, ep_return=jnp.zeros_like(ts.ep_return))

    return restart
