"""The generic chunked training loop that RL agents and the sentiment LM share.

It knows nothing about agents or figures: it compiles nothing itself, it only gives each seed its key and
shards the seed axis over the devices (of every process, rlx.distributed), runs `chunk(state, steps_done)` from Python until the budget is
spent, saves an orbax checkpoint after every chunk (so resume and Ctrl-C are ordinary Python), restores the
latest one, and keeps the persistent compile cache. Keys per seed come from `fold_in(PRNGKey(cfg.seed), i)`,
so seed i is the same run whatever the number of seeds.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import logging
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rlx.errors import NO_SPACE_ERRNOS, UserError, no_space


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
    """An orbax manager for path (created on first save). It keeps two checkpoints: the newest, and the one
    restore_latest falls back to when the newest cannot be read. Each save is atomic: orbax writes
    `<step>.orbax-checkpoint-tmp` and renames it once complete, and lists only renamed steps, so a process killed
    or out of space mid-save leaves the previous checkpoints as they were; its temporary folder is removed here."""
    import orbax.checkpoint as ocp

    opts = ocp.CheckpointManagerOptions(max_to_keep=2, create=True, cleanup_tmp_directories=True)
    # Handlers named up front, so that a checkpoint's metadata can be read before anything was restored.
    handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
    _quiet_orbax_tasks()
    with quiet_orbax():
        return ocp.CheckpointManager(path.absolute(), options=opts, item_handlers=handlers)


@contextlib.contextmanager
def quiet_orbax():
    """Keep orbax's noise about a failed read or write off the terminal, where rlx reports it in one line: absl log
    records with tracebacks, and the exceptions Python prints as unraisable when it finalizes orbax's abandoned
    read coroutines, or when a late TensorStore callback finds orbax's event loop closed. The hooks are
    process-wide, so this spans whole operations, orbax's background saves included."""
    log, hook = logging.getLogger("absl"), sys.unraisablehook
    level = log.level

    def unraisable(u):
        closed_loop = isinstance(u.exc_value, RuntimeError) and "Event loop is closed" in str(u.exc_value)
        if not (closed_loop or inspect.iscoroutine(u.object)):
            hook(u)

    log.setLevel(logging.CRITICAL)
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        log.setLevel(level)
        sys.unraisablehook = hook


class _OrbaxTasksNeverRetrieved(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" for orbax's tasks. After a failed save (a full disk)
    the write tasks orbax abandoned stay referenced by the error on its way out, so they are collected, and
    logged with a traceback each, only as Python exits: after rlx has reported the failure in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not ("exception was never retrieved" in text and "orbax" in text)


def _quiet_orbax_tasks() -> None:
    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _OrbaxTasksNeverRetrieved) for f in log.filters):
        log.addFilter(_OrbaxTasksNeverRetrieved())


# TensorStore reports a failed write as a ValueError whose text carries the OS error code.
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)|\[Errno (\d+)\]")


@contextlib.contextmanager
def _saving(directory):
    """A save that found no room raises an OSError naming the checkpoint folder, however orbax wrapped it, so that
    the command line can say which disk is full (rlx.errors.no_space)."""
    try:
        yield
    except Exception as e:
        code = _no_space_code(e)
        if code is None:
            raise
        raise OSError(code, os.strerror(code), str(directory)) from e


def _no_space_code(exc: BaseException) -> int | None:
    if no_space(exc) is not None:
        return no_space(exc).errno
    for x in _chain(exc):
        for groups in _OS_ERROR_CODE.findall(str(x)):
            code = int(next(g for g in groups if g))
            if code in NO_SPACE_ERRNOS:
                return code
    return None


def _chain(exc: BaseException | None) -> list[BaseException]:
    out = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def _save(mngr, steps: int, state, meta: dict):
    import orbax.checkpoint as ocp

    with _saving(mngr.directory):
        mngr.save(steps, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))


class _Unreadable(Exception):
    """A checkpoint that cannot be read; the message is a short reason for the user."""


def restore_latest(mngr, abstract_state, run_dir: Path):
    """The newest readable checkpoint as (steps, state, meta); (0, None, {}) when there is none.

    A newer checkpoint that cannot be read (a corrupt or truncated file) is reported in one line on stderr and
    removed, so that training saves that step afresh, and the one before it is used; the callers drop metric
    rows past the step returned. A UserError when no checkpoint can be read, or when one does not match
    abstract_state (another version of rlx, whose older checkpoints would not match either)."""
    unreadable = []
    with quiet_orbax():
        for step in sorted(mngr.all_steps(), reverse=True):
            try:
                state, meta = _restore(mngr, step, abstract_state)
            except _Unreadable as e:
                unreadable.append((step, str(e)))
                continue
            _drop_unreadable(mngr, unreadable, step)
            return int(step), state, meta
    if unreadable:
        newest, reason = unreadable[0]
        raise UserError(f"cannot resume from {run_dir}: no checkpoint can be read (checkpoint {newest}: {reason}); "
                        f"start a fresh run with a new --name, or delete {run_dir} and run it again.")
    return 0, None, {}


def _restore(mngr, step: int, abstract_state):
    """(state, meta) of checkpoint `step`; _Unreadable, or a UserError when the cause lies outside the checkpoint
    or the checkpoint holds another state (told apart by its metadata)."""
    import orbax.checkpoint as ocp

    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore())
    try:
        restored = mngr.restore(step, args=args)
        return restored["state"], dict(restored["meta"])
    except Exception as e:  # orbax raises many types for a corrupt file
        outside, reason = _outside_problem(e), _reason(e, Path(mngr.directory) / str(step))
    # Raised from here, outside the except block, no error holds orbax's failure, so the reads that it abandoned
    # are finalized now, while quiet_orbax keeps their complaints off the terminal (not when Python exits).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "coroutine ... was never awaited"
        gc.collect()
    if outside:  # nothing says the checkpoint is bad: keep it, and every other one
        raise UserError(f"cannot read checkpoint {step} in {mngr.directory}: {outside}; fix that, then run the same "
                        "command again.")
    differ = _mismatch(mngr, step, abstract_state)
    if differ:
        raise UserError(f"cannot resume: checkpoint {step} in {mngr.directory} holds another training state than "
                        f"this version of rlx builds ({differ}); start a fresh run with a new --name.")
    raise _Unreadable(reason)


# TensorStore's status codes for a read that failed for reasons outside the file's content.
_OUTSIDE_CODES = ("PERMISSION_DENIED", "UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNAUTHENTICATED")


def _outside_problem(exc: BaseException) -> str:
    """Why a read failed when the cause lies outside the checkpoint (permissions, too many open files, an I/O error
    of the disk): such a checkpoint may be fine, and is never removed. '' when the content itself is at fault."""
    for x in _chain(exc):
        if isinstance(x, OSError) and not isinstance(x, FileNotFoundError):
            return (x.strerror or type(x).__name__).lower()
        code = next((c for c in _OUTSIDE_CODES if c in str(x)), None)
        if code:
            return code.replace("_", " ").lower()
    return ""


def _mismatch(mngr, step: int, abstract_state) -> str:
    """The first difference between the arrays a checkpoint's metadata list and abstract_state ('' for none, or
    when the metadata cannot be read: then the checkpoint is merely unreadable)."""
    try:
        saved, wanted = _shapes(mngr.item_metadata(step)["state"].tree), _shapes(abstract_state)
    except Exception:
        return ""
    for path in sorted(set(saved) | set(wanted)):
        if saved.get(path) != wanted.get(path):
            have, want = (d.get(path, "missing") for d in (saved, wanted))
            return f"{path}: saved {have}, expected {want}"
    return ""


def _shapes(tree) -> dict:
    """{"a.b.0": "float32[4, 2]"} for every array of a pytree (NamedTuples, dicts and lists alike)."""
    def key(k):
        return str(next((getattr(k, a) for a in ("name", "key", "idx") if hasattr(k, a)), k))

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {".".join(key(k) for k in path): f"{np.dtype(x.dtype).name}{list(x.shape)}" for path, x in leaves}


_FILE_IN_TEXT = re.compile(r'(?:local )?file "([^"]+)"')


def _reason(exc: BaseException, step_dir: Path) -> str:
    """Why a checkpoint cannot be read, in a few words: the file that does not decode when the library's text
    names one (relative to the checkpoint), never the library's own text."""
    chain = _chain(exc)
    if any(isinstance(x, FileNotFoundError) for x in chain):
        return "a file of it is missing"
    files = [f for x in chain for f in _FILE_IN_TEXT.findall(str(x)) if not f.endswith("/")]
    json_bad = any(isinstance(x, UnicodeDecodeError | json.JSONDecodeError) or "Invalid JSON" in str(x) for x in chain)
    what = "is not valid JSON" if json_bad else "does not decode"
    if files:
        name = Path(files[-1])
        return f"{name.relative_to(step_dir) if name.is_relative_to(step_dir) else name.name} {what}"
    return f"its metadata {what}" if json_bad else "its array data do not decode"


def _drop_unreadable(mngr, unreadable: list, used: int) -> None:
    """Remove the unreadable checkpoints newer than `used` (a later save of the same step would otherwise be
    skipped as already there) and say so in one line."""
    if not unreadable:
        return
    for step, _ in unreadable:
        mngr.delete(step)
    mngr.reload()
    if jax.process_index() == 0:
        steps = ", ".join(str(s) for s, _ in unreadable)
        reasons = "; ".join(r for _, r in unreadable)
        print(f"rlx: checkpoint {steps} in {mngr.directory} is unreadable ({reasons}): removed; "
              f"resuming from checkpoint {used}", file=sys.stderr)


def run_chunks(mngr, run_path: Path, state, steps_done: int, total: int, chunk: Callable,
               on_chunk: Callable | None = None):
    """The one training loop (RL agents and the sentiment LM): state, steps_done, meta, rows = chunk(state,
    steps_done) until total; after each chunk the state and meta are checkpointed, then on_chunk(steps_done,
    rows) reports it. Ctrl-C stops once the chunk in flight is saved and raises Interrupted; the manager is
    closed either way. A save that finds no room raises an OSError naming the checkpoint folder. Returns
    (state, steps_done)."""
    stop = _StopOnCtrlC()
    try:
        with stop, quiet_orbax():
            while steps_done < total:
                state, steps_done, meta, rows = chunk(state, steps_done)
                _save(mngr, steps_done, state, meta)
                if on_chunk is not None:
                    on_chunk(steps_done, rows)
                if stop.requested and steps_done < total:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        _finish(mngr)
        raise Interrupted(steps_done, run_path) from None
    except BaseException:
        _abandon(mngr)
        raise
    _finish(mngr)
    return state, steps_done


def _finish(mngr) -> None:
    """Wait for the save in flight (orbax saves in the background; a failed one raises here) and close."""
    with quiet_orbax(), _saving(mngr.directory):
        mngr.wait_until_finished()
        mngr.close()


def _abandon(mngr) -> None:
    """Close after an error, letting neither the save in flight nor its own failure hide that error; a checkpoint
    it leaves half written stays a temporary folder, which the next checkpointer removes."""
    with quiet_orbax(), contextlib.suppress(Exception):
        mngr.close()
