"""DQN (Double DQN by default): the TD loss on replay batches, and its update schedule.

The shared pieces (env step, optimizer, evaluation, the solve hook) are in rlx.agents.core. The schedule:

    chunk = scan over blocks (one target period each)
      block = scan over units, then the target update [and PPTB / path snapshots at their period]
        unit = k env steps (all envs) [+ solve hook] + cond(learning: u gradient updates [+ cond(adapt)])
                                                                   (k * num_envs == u * train_every)

Every schedule decision ("learning yet?", "adapt now?", "episode over?") is taken from the shared step
counter, so under vmap it is a real `lax.cond` rather than a select that computes both branches.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlx import config as C
from rlx import pptb, replay
from rlx.agents import core
from rlx.envs import EnvSpec
from rlx.nets import greedy

# dqn.loss: the per-sample loss of the TD error
LOSSES = {"mse": lambda err: 0.5 * jnp.square(err), "huber": lambda err: optax.huber_loss(err, delta=1.0)}


BLOCK_TEXT = "one target period, dqn.target_every; with path snapshots, a whole snapshot period"


def block_steps(cfg) -> int:
    """Env steps per block: one target period, or the lcm with the snapshot period when snapshots are on."""
    d = cfg.dqn
    snap = cfg.path.every_updates * d.train_every
    return math.lcm(d.target_every, snap) if snap > 0 else d.target_every


def replay_bytes(cfg, spec: EnvSpec) -> int:
    """Bytes of one seed's replay buffer."""
    return replay.nbytes(cfg, spec)


def check(cfg) -> None:
    """The loop layout DQN needs: all envs step together, updates and target copies fall on a fixed beat,
    and snapshots and PPTB happen at target-update boundaries; these must line up or the schedule would
    silently differ from what was asked. Whole blocks per run and per chunk need no check: Config.check fits steps
    and eval.every to block_steps first."""
    d, need = cfg.dqn, C.need
    n, tr = d.num_envs, d.train_every
    # The fixes keep num_envs (it sets the shapes) and move the periods to the nearest values that line up.
    need(tr % n == 0 or n % tr == 0,
         f"dqn.train_every ({tr}) and dqn.num_envs ({n}) must divide one another (one env step moves {n} steps).",
         {"dqn.train_every": min([*(k for k in range(1, n + 1) if n % k == 0), C.nearest_multiple(tr, n)],
                                 key=lambda k: abs(k - tr))})
    beat = max(n, tr)
    need(d.target_every % beat == 0,
         f"dqn.target_every ({d.target_every}) must be a multiple of max(dqn.num_envs, dqn.train_every) = {beat}.",
         {"dqn.target_every": C.nearest_multiple(d.target_every, beat)})
    need(d.batch_size <= d.buffer_size, f"dqn.batch_size ({d.batch_size}) cannot exceed dqn.buffer_size ({d.buffer_size}).",
         {"dqn.batch_size": d.buffer_size})
    per_block = d.target_every // tr
    if cfg.path.every_updates:
        need(cfg.path.every_updates % per_block == 0, f"path.every_updates ({cfg.path.every_updates}) must be a multiple "
             f"of the updates per target period, dqn.target_every / dqn.train_every = {per_block}.",
             {"path.every_updates": C.nearest_multiple(cfg.path.every_updates, per_block)})
    b = cfg.pptb
    if b.enabled:
        need((b.every_updates // b.window) % per_block == 0, f"pptb.every_updates / pptb.window "
             f"({b.every_updates // b.window} updates between snapshots) must be a multiple of "
             f"dqn.target_every / dqn.train_every = {per_block}.",
             {"pptb.every_updates": C.nearest_multiple(b.every_updates, b.window * per_block)})


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
    return jnp.mean(LOSSES[loss](q_sa - y)), jnp.mean(q_sa)


class Schedule(NamedTuple):
    """DQN's beat, in units of env iterations (all envs step once) and blocks (target periods)."""

    iters_per_unit: int  # env iterations per unit
    updates_per_unit: int  # gradient updates per unit, once learning has started
    unit_steps: int  # env steps per unit
    units_per_block: int
    snap_blocks: int  # blocks per parameter snapshot (path.every_updates; 0 = none)
    pptb_snap_blocks: int  # blocks per PPTB ring snapshot (0 = PPTB off)
    pptb_apply_blocks: int  # blocks per PPTB application


def schedule(cfg) -> Schedule:
    """The beat that config.check and check() guarantee lines up."""
    d, pb = cfg.dqn, cfg.pptb
    iters = max(1, d.train_every // d.num_envs)
    updates_per_block = d.target_every // d.train_every
    return Schedule(
        iters_per_unit=iters,
        updates_per_unit=max(1, d.num_envs // d.train_every),
        unit_steps=iters * d.num_envs,
        units_per_block=d.target_every // (iters * d.num_envs),
        snap_blocks=cfg.path.every_updates // updates_per_block,
        pptb_snap_blocks=(pb.every_updates // pb.window) // updates_per_block if pb.enabled else 0,
        pptb_apply_blocks=pb.every_updates // updates_per_block,
    )


class DQN(NamedTuple):
    """A built DQN: the shared parts, its schedule and the episode hook."""

    parts: core.Parts
    sched: Schedule
    hook: core.EpisodeHook


def make_train(cfg, spec: EnvSpec) -> core.Agent:
    """Build the agent's pure functions for a config and an env."""
    parts = core.build(cfg, spec, cfg.dqn.num_envs)
    a = DQN(parts, schedule(cfg), core.solve_tracker(parts))
    return core.Agent(
        init=functools.partial(init, a),
        chunk=functools.partial(chunk, a),
        evaluate=core.greedy_evaluator(parts),
        block_steps=cfg.dqn.target_every,
        restart_episodes=functools.partial(restart_episodes, core.episode_restarter(parts)),
        diagnose=core.diagnoser(parts),
        static_blocks=a.sched.snap_blocks > 0,
    )


def init(a: DQN, key, hp) -> core.TrainState:
    """A fresh seed with an empty replay buffer, the target equal to the online network and an empty PPTB ring.

    Frame stacks (Atari) get a replay.FrameBuffer, which keeps each frame once; with dqn.buffer_size not a
    multiple of dqn.num_envs it holds buffer_size // num_envs transitions per env (the remainder is dropped)."""
    d, pb = a.parts.cfg.dqn, a.parts.cfg.pptb
    ts = core.init_state(a.parts, key)
    return ts._replace(target=ts.params, buffer=replay.init(replay.transition(ts.obs[0]), d.buffer_size, d.num_envs),
                       pptb=pptb.init(ts.params, pb.window) if pb.enabled else ())  # fmt: skip


def restart_episodes(restart, ts: core.TrainState, key) -> core.TrainState:
    """core.episode_restarter's `restart`, after the replay keeps the observations it replaces: they are the
    next_obs of the last transitions stored, which a FrameBuffer reads from the stream (replay.break_streams)."""
    return restart(ts._replace(buffer=replay.break_streams(ts.buffer, ts.obs)), key)


def act(a: DQN, ts, sums, hp, step):
    """One env step of all envs; the transition goes to the replay buffer."""
    ts, sums, tr = core.env_step(a.parts, ts, sums, hp, step)
    tr.pop("truncated")  # a truncated transition is stored as non-terminal: it bootstraps
    return ts._replace(buffer=replay.add(ts.buffer, tr)), sums


def update(a: DQN, ts, sums, hp, step):
    """One gradient update on a replay batch; also returns the batch's observations (for adapt)."""
    d, strategy = a.parts.cfg.dqn, a.parts.strategy
    key, k_sample, k_noise, k_opt = jax.random.split(ts.key, 4)
    batch = replay.sample(ts.buffer, k_sample, d.batch_size)
    (loss, q_mean), grads = jax.value_and_grad(q_loss, has_aux=True)(
        ts.params, ts.target, batch, hp.gamma, a.parts.q_apply, d.double, d.loss, k_noise if strategy.train_noise else None
    )
    params, opt_state = core.apply_update(a.parts, ts.params, ts.opt_state, grads, hp, step, k_opt)
    return ts._replace(params=params, opt_state=opt_state, key=key), core.add_update(sums, loss, q_mean), batch["obs"]


def learn(a: DQN, ts, sums, hp, step):
    """The unit's gradient updates at env step `step`, then the strategy's adaptation if this unit crossed a
    multiple of its adapt_every env steps (shared step: a real branch)."""
    s, strategy = a.sched, a.parts.strategy
    for _ in range(s.updates_per_unit):  # a few at most: num_envs / train_every
        ts, sums, obs = update(a, ts, sums, hp, step)
    if strategy.adapt_every:
        crossed = step // strategy.adapt_every > (step - s.unit_steps) // strategy.adapt_every

        def adapt(ts):
            key, k = jax.random.split(ts.key)
            return ts._replace(explore=strategy.adapt(ts.explore, k, a.parts.q_apply, ts.params, obs, step, hp), key=key)

        ts = jax.lax.cond(crossed, adapt, lambda ts: ts, ts)
    return ts, sums


def unit(a: DQN, c, u, hp, step0):
    """iters_per_unit env steps, then updates_per_unit gradient updates once learning has started."""
    ts, sums = c
    s, n = a.sched, a.parts.num_envs
    step = step0 + u * s.unit_steps
    if s.iters_per_unit == 1:
        ts, sums = act(a, ts, sums, hp, step)
    else:
        ts, sums = jax.lax.fori_loop(0, s.iters_per_unit, lambda i, c: act(a, *c, hp, step + i * n), (ts, sums))
    ts = a.hook.after_steps(ts, step, s.iters_per_unit)
    learning = step >= a.parts.cfg.dqn.learning_starts  # shared by all seeds: a real branch under vmap
    ts, sums = jax.lax.cond(learning, lambda ts, sums: learn(a, ts, sums, hp, step + s.unit_steps),
                            lambda ts, sums: (ts, sums), ts, sums)  # fmt: skip
    return (ts, sums), None


def block(a: DQN, c, b, hp, step0):
    """One target period: units of acting and learning, then the target update (and PPTB's events)."""
    d = a.parts.cfg.dqn
    step = step0 + b * d.target_every
    (ts, sums), _ = jax.lax.scan(lambda c, u: unit(a, c, u, hp, step), c, jnp.arange(a.sched.units_per_block))
    target = jax.tree.map(lambda p, t: hp.tau * p + (1.0 - hp.tau) * t, ts.params, ts.target)
    ts = ts._replace(target=target)
    if a.parts.cfg.pptb.enabled:
        ts, sums = pptb_event(a, ts, sums, step)
    return (ts, sums), None


def pptb_event(a: DQN, ts, sums, step):
    """At the end of the block that started at env step `step`: maybe snapshot, maybe trim and boost."""
    cfg, s = a.parts.cfg, a.sched
    d, pb = cfg.dqn, cfg.pptb
    done = (step + d.target_every) // d.target_every  # blocks finished so far (shared: real branches)

    def take(ts, sums):
        ring = pptb.snapshot(ts.pptb, ts.params)
        # Apply once the whole window was taken after learning started (a frozen path has nothing to trim).
        window_start = (done - (pb.window - 1) * s.pptb_snap_blocks) * d.target_every
        ready = (done % s.pptb_apply_blocks == 0) & (window_start > d.learning_starts)

        def apply(ts, sums):
            params, ring2, stats = pptb.apply(ring, ts.params, cfg)
            e = sums.extra
            extra = {"pptb_count": e["pptb_count"] + 1.0, "pptb_shift": e["pptb_shift"] + stats["shift"],
                     "pptb_k": e["pptb_k"] + stats["k_mean"]}  # fmt: skip
            return ts._replace(params=params, pptb=ring2), sums._replace(extra=extra)

        return jax.lax.cond(ready, apply, lambda ts, sums: (ts._replace(pptb=ring), sums), ts, sums)

    return jax.lax.cond(done % s.pptb_snap_blocks == 0, take, lambda ts, sums: (ts, sums), ts, sums)


def chunk(a: DQN, ts, hp, step0, num_blocks: int):
    """Run num_blocks target periods starting at env step step0 (shared across seeds); returns (state,
    metrics, parameter snapshots every path.every_updates updates)."""
    extra = ("pptb_count", "pptb_shift", "pptb_k") if a.parts.cfg.pptb.enabled else ()
    c0 = (ts, core.zero_sums(a.parts, ts, hp, extra))
    snap = a.sched.snap_blocks
    if snap:
        # Scan over snapshot periods, each a scan over its blocks, stacking the params at each period's end.
        def period(c, j):
            c, _ = jax.lax.scan(lambda c, i: block(a, c, j * snap + i, hp, step0), c, jnp.arange(snap))
            return c, c[0].params

        (ts, sums), snaps = jax.lax.scan(period, c0, jnp.arange(num_blocks // snap))
    else:
        ts, sums = jax.lax.fori_loop(0, num_blocks, lambda i, c: block(a, c, i, hp, step0)[0], c0)
        snaps = ()
    return ts, metrics(a, ts, sums), snaps


def metrics(a: DQN, ts, sums) -> dict:
    """The chunk's metrics: the loop's, PPTB's (NaN in chunks without an application), the hook's, the strategy's."""
    out = core.loop_metrics(sums)
    if sums.extra:
        count = sums.extra["pptb_count"]
        out.update(pptb_applied=count, pptb_shift=sums.extra["pptb_shift"] / count, pptb_k=sums.extra["pptb_k"] / count)
    return {**out, **a.hook.metrics(ts), **core.explore_metrics(sums)}
