"""Compile once, vmap over seeds, run the compiled chunk from a Python loop.

After each chunk (eval.every env steps) the loop evaluates greedily, appends metrics, saves an orbax
checkpoint and reports progress, so resume and Ctrl-C are ordinary Python. Keys per seed come from
`fold_in(PRNGKey(cfg.seed), i)`, so seed i is the same run whatever the number of seeds.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rlx import config as C
from rlx import envs, loop, plots
from rlx.agents import dqn, pqn
from rlx.errors import UserError
from rlx.nets import leaf_names
from rlx.results import RunDir, summarize


@dataclass
class Compiled:
    """The jitted, vmapped programs of one (config, seeds) and how long compiling them took."""

    agent: dqn.Agent
    init: Callable
    chunk: Callable
    evaluate: Callable
    diagnose: Callable
    compile_seconds: float = 0.0
    _chunks: dict = field(default_factory=dict)

    def chunk_for(self, state, hp, step0, num_blocks):
        """The compiled chunk for num_blocks target periods (compiled on first use, timed)."""
        if num_blocks not in self._chunks:
            t = time.perf_counter()
            lowered = self.chunk.lower(state, hp, jnp.int32(step0), num_blocks)
            self._chunks[num_blocks] = lowered.compile()
            self.compile_seconds += time.perf_counter() - t
        return self._chunks[num_blocks]


def eval_keys(keys, steps: int):
    """Greedy-evaluation keys for each seed at a given step; never reused by training."""
    tag = jnp.uint32(0x5EED)
    return jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, tag), steps))(keys)


def batch_hparams(cfg, seeds: int):
    """The config's batched hyperparameters repeated over the seed axis."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,)), dqn.hparams(cfg))


def compile_agent(cfg, spec, seeds: int) -> Compiled:
    """jit(vmap(...)) the agent's functions; the seed axis is the leading axis of state and hparams."""
    agent = (pqn if cfg.agent == "pqn" else dqn).make_train(cfg, spec)
    init = jax.jit(jax.vmap(agent.init))
    chunk = jax.jit(jax.vmap(agent.chunk, in_axes=(0, 0, None, None)), static_argnums=3, donate_argnums=0)
    evaluate = jax.jit(jax.vmap(agent.evaluate))
    return Compiled(agent, init, chunk, evaluate, jax.jit(jax.vmap(agent.diagnose)))


def probe_states(cfg, spec, keys):
    """Each seed's fixed probe batch for the diagnostics (cfg.diag.batch random-policy states), rebuilt from the
    seed keys so that a resumed run measures on the same states; None when off or for host envs."""
    if not cfg.diag.enabled or spec.kind != "gymnax":
        return None
    return _probe_program(cfg.env, cfg.diag.batch)(keys)


@functools.lru_cache(maxsize=16)
def _probe_program(env: str, n: int):
    # One compiled rollout per env and batch size in a process: compiling it took 1.9 s for CartPole, and a
    # process that trains many runs (a sweep, the tests) paid that every run.
    spec = envs.make(env)
    tag = jnp.uint32(0xD1A6)
    return jax.jit(jax.vmap(lambda k: envs.random_states(spec, jax.random.fold_in(k, tag), n)))


PATH_DIR = "path"


def write_snapshots(run_path: Path, steps: list[int], snaps) -> None:
    """Write one chunk's parameter snapshots as path/{last step}.npz: "steps" (k,) and, per params leaf,
    (batch, k, *leaf shape) float32 (the format `rlx analyze path` reads). Written atomically."""
    folder = run_path / PATH_DIR
    folder.mkdir(exist_ok=True)
    snaps = jax.device_get(snaps)
    arrays = {"steps": np.asarray(steps, np.int64)}
    arrays.update({name: np.asarray(leaf, np.float32) for name, leaf in zip(leaf_names(snaps), jax.tree.leaves(snaps),
                                                                             strict=True)})
    tmp = folder / f".{steps[-1]:010d}.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(folder / f"{steps[-1]:010d}.npz")


def truncate_snapshots(run_path: Path, max_step: int) -> None:
    """Drop snapshot files written after the checkpoint a run resumes from (and torn temporary files)."""
    folder = run_path / PATH_DIR
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if f.name.startswith(".") or (f.suffix == ".npz" and f.stem.isdigit() and int(f.stem) > max_step):
            f.unlink()


def episodes_to_solve(solved_at) -> dict:
    """Per-seed episode at which the greedy policy completed its optimal streak (None: never), the count
    solved, and the median over all seeds with unsolved seeds counted as never (None if most never did)."""
    per_seed = [int(e) if e >= 0 else None for e in solved_at]
    med = float(np.median([np.inf if e is None else e for e in per_seed]))
    return {"per_seed": per_seed, "solved": sum(e is not None for e in per_seed), "median": None if np.isinf(med) else med}


def _rows(metrics: dict, eval_returns, steps: int, chunk: int, seeds: int, cells: int = 1) -> list[dict]:
    """Per-seed metric rows for one chunk (NaN stays NaN; results writes it as null). The batch axis is
    cell-major; rows carry "cell" only when several cells share the program."""
    rows = []
    for b in range(cells * seeds):
        row = {"cell": b // seeds} if cells > 1 else {}
        row.update({"seed": b % seeds, "chunk": chunk, "steps": steps})
        row.update({k: float(v[b]) for k, v in metrics.items()})
        row["eval_return"] = float(np.mean(eval_returns[b]))
        rows.append(row)
    return rows


def train(cfg: C.Config, seeds: int, run_dir: RunDir, *, resume: bool = False, on_chunk: Callable | None = None,
          devices: int | None = None) -> dict:
    """Train `seeds` seeds of cfg to cfg.steps env steps each; returns the summary (also written to disk)."""
    return train_cells([cfg], seeds, run_dir, resume=resume, on_chunk=on_chunk, devices=devices)[0]


def train_cells(cfgs: list[C.Config], seeds: int, run_dir: RunDir, *, resume: bool = False,
                on_chunk: Callable | None = None, devices: int | None = None) -> list[dict]:
    """Train several configs that differ only in batched hyperparameters (rlx.config.HPARAMS, seed) as one
    compiled program, vmapped over cells x seeds; returns one summary per config.

    Seed i of every cell uses the key of seed i of a single run, so a cell gives what `rlx train` gives.
    """
    if seeds <= 0:
        raise UserError(f"seeds must be positive, got {seeds}.")
    cfg = cfgs[0]
    if any(C.static_part(c) != C.static_part(cfg) for c in cfgs):
        raise ValueError("train_cells: configs differ in more than the batched hyperparameters")
    spec = envs.make(cfg.env)
    wall0 = time.perf_counter()
    batch = len(cfgs) * seeds
    prog = compile_agent(cfg, spec, batch)
    # Host envs (Atari) step all seeds' emulators in one call from one device.
    sharding = loop.seed_sharding(batch, 1 if spec.kind != "gymnax" else devices)
    keys = jnp.concatenate([loop.seed_keys(c, seeds) for c in cfgs])
    hp = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[batch_hparams(c, seeds) for c in cfgs])
    keys, hp = jax.device_put((keys, hp), sharding)
    t = time.perf_counter()
    init_c = prog.init.lower(keys, hp).compile()
    prog.compile_seconds += time.perf_counter() - t
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), jax.eval_shape(prog.init, keys, hp)
    )

    t = time.perf_counter()
    evaluate = prog.evaluate.lower(abstract.params, keys).compile()
    prog.compile_seconds += time.perf_counter() - t

    mngr = loop.checkpointer(run_dir.checkpoint_dir)
    steps_done, state, meta = (0, None, {})
    if resume:
        steps_done, state, meta = loop.restore_latest(mngr, abstract, run_dir.path)
        run_dir.truncate_metrics(steps_done)
        truncate_snapshots(run_dir.path, steps_done)
    if state is None:
        state = jax.device_put(init_c(keys, hp), sharding)
        if cfg.path.every:
            write_snapshots(run_dir.path, [0], jax.tree.map(lambda x: x[:, None], state.params))
    elif spec.kind != "gymnax":
        # The emulators did not survive the process: every env starts a new episode (the replay buffer,
        # networks and exploration state are restored as saved).
        restart_keys = jax.vmap(lambda k: jax.random.fold_in(k, steps_done))(keys)
        state = jax.jit(jax.vmap(prog.agent.restart_episodes))(state, restart_keys)
    prior_wall = float(meta.get("wall_seconds", 0.0))

    block = prog.agent.block_steps
    chunk_blocks = cfg.eval.every // block
    last = {"chunk": steps_done // cfg.eval.every, "eval": None}
    one = sharding.mesh.devices.flat[0]
    probe = probe_states(cfg, spec, jax.device_put(keys, one))
    snap_steps = cfg.path.every * cfg.dqn.train_every

    def chunk(state, steps_done):
        nb = min(chunk_blocks, (cfg.steps - steps_done) // block)
        state, metrics, snaps = prog.chunk_for(state, hp, steps_done, nb)(state, hp, jnp.int32(steps_done))
        if snap_steps:
            write_snapshots(run_dir.path, list(range(steps_done + snap_steps, steps_done + nb * block + 1, snap_steps)), snaps)
        if probe is not None:
            # On one device: with the seeds sharded over CPU devices the diagnostics program (its batched SVDs)
            # never returned (6 seeds on 2 devices); gathered, it takes milliseconds.
            metrics = {**metrics, **prog.diagnose(jax.device_put(state.params, one), probe)}
        steps_done += nb * block
        last["chunk"] += 1
        last["eval"] = np.asarray(evaluate(state.params, eval_keys(keys, steps_done)))
        rows = _rows(jax.device_get(metrics), last["eval"], steps_done, last["chunk"], seeds, len(cfgs))
        run_dir.append_metrics(rows)
        return state, steps_done, {"steps": steps_done, "wall_seconds": prior_wall + time.perf_counter() - wall0}, rows

    state, steps_done = loop.run_chunks(mngr, run_dir.path, state, steps_done, cfg.steps, chunk, on_chunk)
    eval_returns = last["eval"]
    if eval_returns is None:  # resumed a finished run: evaluate the restored parameters once more
        eval_returns = np.asarray(evaluate(state.params, eval_keys(keys, steps_done)))
    wall = prior_wall + time.perf_counter() - wall0
    solved_at = np.asarray(state.solve)[:, 2]
    summaries = []
    for i, c in enumerate(cfgs):
        cell = slice(i * seeds, (i + 1) * seeds)
        summary = {
            "env": c.env,
            "agent": c.agent,
            "noise": c.noise,
            "seeds": seeds,
            "steps": steps_done,
            "wall_seconds": round(wall, 3),
            "compile_seconds": round(prog.compile_seconds, 3),
            "devices": len(sharding.mesh.devices.flat),
            "eval_return": summarize([float(np.mean(r)) for r in eval_returns[cell]]),
        }
        if spec.optimal_return is not None:
            summary["optimal_return"] = spec.optimal_return
            summary["episodes_to_solve"] = episodes_to_solve(solved_at[cell])
        summaries.append(summary)
    run_dir.write_summary(summaries[0] if len(cfgs) == 1 else {"cells": summaries})
    if len(cfgs) == 1:  # a sweep draws its figures per grid axis from all its groups (rlx.sweep)
        rows = run_dir.read_metrics()
        plots.learning_curves(rows, run_dir.path / "learning_curve.png", title=f"{cfg.env} {cfg.noise}")
        plots.distance_trace(rows, run_dir.path / "param_noise.png", title=f"{cfg.env}: d vs δ (chunk means)")
    return summaries
