"""The RL runner: build the compiled program for a group of cells, drive it through rlx.loop, return typed results.

A group is one or more configs that differ only in batched fields and the seed (rlx.config.static_part), run
as one program vmapped over cells x seeds. After each chunk (eval.every env steps) the runner evaluates
greedily, measures representation health, flags seeds that diverged or went non-finite (rlx.health), writes
parameter snapshots and metric rows (metrics.jsonl and TensorBoard scalars, rlx.tensorboard); rlx.loop saves the
checkpoint, with the flags in its meta. The runner draws no figure and, apart from `train`, writes no summary: its
callers do.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlx import agents, distributed, envs, health, loop, tensorboard
from rlx import config as C
from rlx import results as R
from rlx.agents.core import hparams
from rlx.errors import UserError


class CellResult(NamedTuple):
    """One cell of a finished program; `rlx.results.run_summary` gives its summary layout."""

    cfg: C.Config
    seeds: int
    steps: int
    eval_returns: np.ndarray  # (seeds, eval.episodes) greedy returns after the last chunk
    solved_at: np.ndarray | None  # (seeds,) episode when solved, -1 never; None unless the env has a known optimum
    optimal_return: float | None
    wall_seconds: float
    compile_seconds: float
    devices: int
    health: dict  # rlx.health.block of the cell's seeds


def eval_keys(keys, steps: int):
    """Greedy-evaluation keys for each seed at a given step; never reused by training."""
    tag = jnp.uint32(0x5EED)
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, tag), steps))(keys)


def batch_hparams(cfg, seeds: int):
    """The config's batched hyperparameters repeated over the seed axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,)), hparams(cfg))


@functools.lru_cache(maxsize=16)
def _probe_program(env: str, n: int):
    # One compiled rollout per env and batch size in a process: compiling it took 1.9 s for CartPole, and a
    # process that trains many runs (a sweep, the tests) paid that every run.
    spec = envs.make(env)
    tag = jnp.uint32(0xD1A6)
    return jax.jit(jax.vmap(lambda k: envs.random_states(spec, jax.random.fold_in(k, tag), n)))


def probe_states(cfg, spec, keys):
    """Each seed's fixed probe batch for the diagnostics (cfg.diag.batch random-policy states), rebuilt from the
    seed keys so that a resumed run measures on the same states; None when off or for host-stepped envs."""
    if not cfg.diag.enabled or spec.host_stepped:
        return None
    return _probe_program(cfg.env, cfg.diag.batch)(keys)


@dataclass
class Program:
    """The jitted, vmapped programs of one group (cells x seeds), its inputs, and how long compiling took."""

    cfgs: list
    seeds: int
    spec: envs.EnvSpec
    agent: agents.core.Agent
    sharding: Any
    keys: jax.Array  # (cells * seeds,) cell-major
    hp: Any  # HParams of (cells * seeds,) arrays
    init: Callable
    evaluate: Callable
    diagnose: Callable
    abstract: Any  # the sharded shapes of the train state (what restore fills)
    compile_seconds: float
    chunks: dict = field(default_factory=dict)  # num_blocks (static_blocks agents) or "any" -> compiled chunk

    def chunk_for(self, state, num_blocks: int):
        """f(state, hp, step0): the compiled chunk of num_blocks blocks (compiled on first use, timed). One program
        serves every length unless the agent has static_blocks."""
        static = self.agent.static_blocks
        key = num_blocks if static else "any"
        if key not in self.chunks:
            t = time.perf_counter()
            chunk = jax.jit(jax.vmap(self.agent.chunk, in_axes=(0, 0, None, None)), static_argnums=3 if static else (),
                            donate_argnums=0)  # fmt: skip
            lowered = chunk.lower(state, self.hp, jnp.int32(0), num_blocks if static else jnp.int32(0))
            self.chunks[key] = lowered.compile(compiler_options=chunk_compiler_options())
            self.compile_seconds += time.perf_counter() - t
        if static:
            return self.chunks[key]
        return lambda state, hp, step0: self.chunks[key](state, hp, step0, jnp.int32(num_blocks))


# XLA:CPU of jaxlib 0.10 hands dots *and* reductions to the YNNPACK library, one library call per reduction; a
# LayerNorm network has a dozen small ones per update. Leaving reductions to XLA's own loops took the 1-seed update of
# the 120-84 LayerNorm net from 363 to 159-171 us (130 us without LayerNorm), and 8-seed programs did not get slower
# (docs/benchmarks.md). Only for the training chunk, the hot loop it was measured on (other programs keep their
# rounding), and only on the jaxlib minor it was measured on: an option a later XLA no longer knows fails the compile.
YNN_DOTS_ONLY = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_DOT"}


def chunk_compiler_options() -> dict:
    """XLA options for the training chunk: YNN_DOTS_ONLY on a CPU backend of jaxlib 0.10, else none."""
    import jaxlib

    return dict(YNN_DOTS_ONLY) if jax.default_backend() == "cpu" and jaxlib.__version__.startswith("0.10.") else {}


def build(cfgs: list, seeds: int, devices: int | None) -> Program:
    """Make the agent, shard cells x seeds over the devices and compile init and evaluate."""
    cfg = cfgs[0]
    spec = envs.make(cfg.env)
    agent = agents.make_train(cfg, spec)
    # Host-stepped envs (Atari) step all seeds' emulators in one call from one device.
    sharding = loop.seed_sharding(len(cfgs) * seeds, 1 if spec.host_stepped else devices)
    keys = jnp.concatenate([loop.seed_keys(c, seeds) for c in cfgs])
    hp = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[batch_hparams(c, seeds) for c in cfgs])
    keys, hp = distributed.put((keys, hp), sharding)
    t = time.perf_counter()
    init = jax.jit(jax.vmap(agent.init)).lower(keys, hp).compile()
    shapes = jax.eval_shape(jax.vmap(agent.init), keys, hp)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)
    evaluate = jax.jit(jax.vmap(agent.evaluate)).lower(abstract.params, keys).compile()
    return Program(cfgs, seeds, spec, agent, sharding, keys, hp, init, evaluate, jax.jit(jax.vmap(agent.diagnose)),
                   abstract, compile_seconds=time.perf_counter() - t)


def start(prog: Program, run_dir: R.RunDir, mngr, resume: bool):
    """(state, steps done, checkpoint meta): restored on resume (metrics and snapshots after the checkpoint are
    dropped), else fresh."""
    steps_done, state, meta = 0, None, {}
    if resume:
        steps_done, state, meta = loop.restore_latest(mngr, prog.abstract, run_dir.path)
        run_dir.truncate_metrics(steps_done)
        if run_dir.writes:
            R.truncate_snapshots(run_dir.path, steps_done)
    if state is None:
        state = jax.device_put(prog.init(prog.keys, prog.hp), prog.sharding)
        if prog.cfgs[0].path.every_updates:
            write_snapshots(run_dir, [0], jax.tree.map(lambda x: x[:, None], state.params))
    elif prog.spec.host_stepped:
        # The emulators did not survive the process: every env starts a new episode (the replay buffer,
        # networks and exploration state are restored as saved).
        restart_keys = jax.vmap(lambda k: jax.random.fold_in(k, steps_done))(prog.keys)
        state = jax.jit(jax.vmap(prog.agent.restart_episodes))(state, restart_keys)
    return state, steps_done, meta


def write_snapshots(run_dir: R.RunDir, steps: list[int], snaps) -> None:
    """Parameter snapshots to the run directory (rlx.results.write_snapshots); every process gathers them, the one
    that writes the run writes them."""
    snaps = distributed.gather(snaps)
    if run_dir.writes:
        R.write_snapshots(run_dir.path, steps, snaps)


def chunk_runner(prog: Program, run_dir: R.RunDir, steps_done: int, wall0: float, prior_wall: float,
                 tb: tensorboard.Writer, tracker: health.Tracker):
    """The loop's chunk(state, steps_done): train, snapshot, diagnose, check every seed's health (into tracker),
    evaluate and write the metric rows (to metrics.jsonl, then as TensorBoard scalars). The last evaluation is kept
    in `chunk.last_eval`."""
    cfg, block = prog.cfgs[0], prog.agent.block_steps
    one = jax.local_devices()[0]
    probe = probe_states(cfg, prog.spec, distributed.to_device(prog.keys, one))
    snap_steps = cfg.path.every_updates * cfg.dqn.train_every
    count = {"chunk": steps_done // cfg.eval.every}

    def chunk(state, steps_done):
        nb = min(cfg.eval.every // block, (cfg.steps - steps_done) // block)
        state, metrics, snaps = prog.chunk_for(state, nb)(state, prog.hp, jnp.int32(steps_done))
        if snap_steps:
            write_snapshots(run_dir, list(range(steps_done + snap_steps, steps_done + nb * block + 1, snap_steps)),
                            snaps)  # fmt: skip
        metrics = distributed.gather(metrics)
        tracker.update(metrics, distributed.gather(health.params_finite(state.params)))
        if probe is not None:
            # On one device: with the seeds sharded over CPU devices the diagnostics program (its batched SVDs)
            # never returned (6 seeds on 2 devices); gathered, it takes milliseconds.
            metrics = {**metrics, **jax.device_get(prog.diagnose(distributed.to_device(state.params, one), probe))}
        steps_done += nb * block
        count["chunk"] += 1
        chunk.last_eval = distributed.gather(prog.evaluate(state.params, eval_keys(prog.keys, steps_done)))
        rows = R.metric_rows(metrics, chunk.last_eval, steps_done, count["chunk"], prog.seeds, len(prog.cfgs),
                             tracker.status)  # fmt: skip
        run_dir.append_metrics(rows)
        tb.write(rows)
        meta = {"steps": steps_done, "wall_seconds": prior_wall + time.perf_counter() - wall0, **tracker.meta()}
        return state, steps_done, meta, rows

    chunk.last_eval = None
    return chunk


def train_cells(cfgs: list[C.Config], seeds: int, run_dir: R.RunDir, *, resume: bool = False,
                on_chunk: Callable | None = None, devices: int | None = None,
                cell_names: list[str] | None = None) -> list[CellResult]:
    """Train several configs that differ only in batched fields as one compiled program, vmapped over
    cells x seeds; returns one CellResult per config. `cell_names` name the cells' TensorBoard trees
    (rlx.tensorboard).

    Seed i of every cell uses the key of seed i of a single run, so a cell gives what `rlx train` gives.
    """
    if seeds <= 0:
        raise UserError(f"seeds must be positive, got {seeds}.")
    if any(C.static_part(c) != C.static_part(cfgs[0]) for c in cfgs):
        raise ValueError("train_cells: configs differ in more than the batched fields")
    wall0 = time.perf_counter()
    prog = build(cfgs, seeds, devices)
    mngr = loop.checkpointer(run_dir.checkpoint_dir)
    state, steps_done, meta = start(prog, run_dir, mngr, resume)
    prior_wall = float(meta.get("wall_seconds", 0.0))
    tracker = health.Tracker.start(cfgs, seeds, prog.spec, meta)
    with tensorboard.Writer(run_dir.path, len(cfgs), cell_names, start_step=steps_done, enabled=run_dir.writes) as tb:
        chunk = chunk_runner(prog, run_dir, steps_done, wall0, prior_wall, tb, tracker)
        state, steps_done = loop.run_chunks(mngr, run_dir.path, state, steps_done, cfgs[0].steps, chunk, on_chunk)
    eval_returns = chunk.last_eval
    if eval_returns is None:  # resumed a finished run: evaluate the restored parameters once more
        eval_returns = distributed.gather(prog.evaluate(state.params, eval_keys(prog.keys, steps_done)))
    wall = prior_wall + time.perf_counter() - wall0
    optimal = prog.spec.optimal_return
    solved_at = distributed.gather(state.solve)[:, 2] if optimal is not None else None
    devices_used = len(prog.sharding.mesh.devices.flat)
    return [
        CellResult(c, seeds, steps_done, eval_returns[i * seeds : (i + 1) * seeds],
                   None if solved_at is None else solved_at[i * seeds : (i + 1) * seeds], optimal, wall,
                   prog.compile_seconds, devices_used, tracker.cell(i))  # fmt: skip
        for i, c in enumerate(cfgs)
    ]


def train(cfg: C.Config, seeds: int, run_dir: R.RunDir, *, resume: bool = False, on_chunk: Callable | None = None,
          devices: int | None = None) -> dict:
    """Train `seeds` seeds of cfg to cfg.steps env steps each; writes and returns the run's summary."""
    summary = R.run_summary(train_cells([cfg], seeds, run_dir, resume=resume, on_chunk=on_chunk, devices=devices)[0])
    run_dir.write_summary(summary)
    return summary
