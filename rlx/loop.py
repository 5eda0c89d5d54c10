"""The generic chunked training loop that RL agents and the sentiment LM share.

It knows nothing about agents or figures: it compiles nothing itself, it only gives each seed its key and
shards the seed axis over the devices (of every process, rlx.distributed), runs `chunk(state, steps_done)` from Python until the budget is
spent, saves an orbax checkpoint after every chunk (so resume and Ctrl-C are ordinary Python), restores the
latest one, and keeps the persistent compile cache. Keys per seed come from `fold_in(PRNGKey(cfg.seed), i)`,
so seed i is the same run whatever the number of seeds.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rlx.errors import UserError


class Interrupted(Exception):
    """Ctrl-C during training; the last complete chunk is checkpointed."""

    def __init__(self, steps: int, run_dir: Path):
        super().__init__(f"interrupted at {steps} steps; checkpoint saved in {run_dir}")
        self.steps, self.run_dir = steps, run_dir


def enable_compile_cache() -> None:
    """Persist compiled programs across runs (RLX_COMPILE_CACHE=DIR, or off); re-runs skip most compiling."""
    where = os.environ.get("RLX_COMPILE_CACHE", str(Path.home() / ".cache" / "rlx" / "jax"))
    if where.lower() in ("", "0", "off", "false", "no"):
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


DETERMINISTIC_OPS = "--xla_gpu_deterministic_ops=true"


def use_deterministic_ops(on: bool) -> None:
    """`deterministic=true`: ask XLA for deterministic GPU ops. XLA reads XLA_FLAGS when jax first touches a
    device, so this must run before anything builds an array; the commands call it right after resolving the
    config. A no-op on CPU, whose programs give the same numbers on every run anyway."""
    flags = os.environ.get("XLA_FLAGS", "")
    if on and DETERMINISTIC_OPS not in flags.split():
        os.environ["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_OPS}".strip()


def seed_keys(cfg, seeds: int):
    """One PRNG key per seed, independent of how many seeds run together."""
    base = jax.random.PRNGKey(cfg.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(seeds))


def seed_sharding(batch: int, max_devices: int | None = None):
    """Shard the leading batch axis (cells x seeds) over as many devices as divide it: the same number from each
    process (one with a single process), at most max_devices of each (CPU cores count as devices)."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if max_devices is not None and max_devices <= 0:
        raise UserError(f"--devices must be positive, got {max_devices}.")
    mine = [[d for d in jax.devices() if d.process_index == p] for p in range(jax.process_count())]
    local = min(len(ds) for ds in mine) if max_devices is None else min(max_devices, *map(len, mine))
    n = max(k for k in range(1, local + 1) if batch % (k * len(mine)) == 0)
    return NamedSharding(Mesh(np.array([d for ds in mine for d in ds[:n]]), ("seed",)), PartitionSpec("seed"))


class _StopOnCtrlC:
    """First Ctrl-C: finish and save the chunk in flight, then stop. A second one aborts at once.

    A KeyboardInterrupt raised inside orbax's background save threads would leave a torn checkpoint,
    and the compiled chunk cannot be interrupted anyway, so the loop polls this flag between chunks.
    """

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("rlx: Ctrl-C: stopping after the current chunk is saved (Ctrl-C again to abort)", file=sys.stderr)

    def __enter__(self):
        # Python accepts signal handlers only in the main thread; elsewhere (a launcher's worker thread) Ctrl-C
        # stays the caller's business.
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def checkpointer(path: Path):
    """An orbax manager for path (created on first save), keeping the last two checkpoints."""
    import orbax.checkpoint as ocp

    opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=True)
    return ocp.CheckpointManager(path.absolute(), options=opts)


def _save(mngr, steps: int, state, meta: dict):
    import orbax.checkpoint as ocp

    mngr.save(steps, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))


def restore_latest(mngr, abstract_state, run_dir: Path):
    """Latest checkpoint as (steps, state, meta); a clear UserError when it is unreadable or mismatched."""
    import orbax.checkpoint as ocp

    step = mngr.latest_step()
    if step is None:
        return 0, None, {}
    try:
        restored = mngr.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
        )
    except Exception as e:  # orbax raises many types for corrupt or mismatched trees
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot resume from {run_dir}/checkpoints/{step}: checkpoint is corrupt or does not match the config "
            f"({first}). Start a fresh run with a new --name."
        ) from None
    return int(step), restored["state"], dict(restored["meta"])


def run_chunks(mngr, run_path: Path, state, steps_done: int, total: int, chunk: Callable,
               on_chunk: Callable | None = None):
    """The one training loop (RL agents and the sentiment LM): state, steps_done, meta, rows = chunk(state,
    steps_done) until total; after each chunk the state and meta are checkpointed, then on_chunk(steps_done,
    rows) reports it. Ctrl-C stops once the chunk in flight is saved and raises Interrupted; the manager is
    closed either way. Returns (state, steps_done)."""
    stop = _StopOnCtrlC()
    try:
        with stop:
            while steps_done < total:
                state, steps_done, meta, rows = chunk(state, steps_done)
                _save(mngr, steps_done, state, meta)
                if on_chunk is not None:
                    on_chunk(steps_done, rows)
                if stop.requested and steps_done < total:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        mngr.wait_until_finished()
        mngr.close()
        raise Interrupted(steps_done, run_path) from None
    mngr.wait_until_finished()
    mngr.close()
    return state, steps_done


