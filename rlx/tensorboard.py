"""TensorBoard event files of a run: each chunk's metric rows as scalars, written with tensorboardX (no TensorFlow).

Layout. A run of one cell writes <run_dir>/tb/. A program of several cells (a sweep group) writes one tree per
cell, <run_dir>/tb/<cell>/, named after the cell (`noise=param lr=0.001` becomes `noise=param,lr=0.001`), or
cell_<i> when the caller has no names; a named single cell gets its tree too, so that every cell of a sweep
shows up by name: `tensorboard --logdir runs/sweep-x` lists runs such as `groups/g0/tb/noise=param,lr=0.001`.

Tags. For every numeric key of the rows (eval_return, the greedy return; return_mean, the exploratory one;
loss, q_mean, updates; sigma, dist, delta for parameter noise; srank, erank, dormant_...: whatever the rows
hold), at global_step = env steps per seed (the rows' "steps"):

    seed_<i>/<key>   seed i's value
    mean/<key>       the mean over the seeds that have a value

TensorBoard makes a section of each prefix: `mean` for the run at a glance, `seed_<i>` per seed. A value that
metrics.jsonl records as null (NaN, inf) is left out. The bookkeeping keys cell, seed, chunk and steps are not tags.

Resume. Each time a run starts, every tree gets a new event file that opens with a SessionLog START at the
restored step + 1; TensorBoard's readers then drop the points an earlier process wrote after the checkpoint,
as metrics.jsonl drops its rows (the Python reader at the START event, the Rust data server per tag when the
resumed run writes that step again).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event, SessionLog
from tensorboardX.proto.summary_pb2 import Summary

from rlx.errors import writing

TB_DIR = "tb"
NOT_TAGS = frozenset({"cell", "seed", "chunk", "steps"})


def dir_name(cell_name: str) -> str:
    """A cell's name as one directory name: `noise=param lr=0.001` -> `noise=param,lr=0.001`."""
    return re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", ",".join(cell_name.split()))


def cell_dirs(run_path: Path, cells: int, names: list[str] | None = None) -> list[Path]:
    """The event-file directory of each cell of a run (see the module docstring)."""
    root = Path(run_path) / TB_DIR
    if names is None:
        return [root] if cells == 1 else [root / f"cell_{i}" for i in range(cells)]
    if len(names) != cells:
        raise ValueError(f"{len(names)} cell names for {cells} cells")
    dirs = [dir_name(n) or f"cell_{i}" for i, n in enumerate(names)]
    if len(set(dirs)) < len(dirs):  # two names that differ only in dropped characters must not share a tree
        dirs = [f"{i}_{d}" for i, d in enumerate(dirs)]
    return [root / d for d in dirs]


def scalars(rows: list[dict]) -> dict[str, float]:
    """Tag -> value for the rows of one cell at one step: seed_<i>/<key> per seed, then mean/<key>."""
    tags, per_key = {}, {}
    for row in rows:
        for key, v in row.items():
            if key in NOT_TAGS or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            tags[f"seed_{row['seed']}/{key}"] = float(v)
            per_key.setdefault(key, []).append(float(v))
    tags.update({f"mean/{key}": float(np.mean(vs)) for key, vs in per_key.items()})
    return tags


class Writer:
    """One event file per cell for the life of a process; `write(rows)` after each chunk, `close()` at the end
    (a context manager, so Ctrl-C closes it too)."""

    def __init__(self, run_path: Path, cells: int, names: list[str] | None = None, start_step: int = 0,
                 enabled: bool = True):
        """enabled=False: a writer that writes nothing (the processes of a multi-process run but the first)."""
        # tensorboardX's SummaryWriter hands events to a background thread, and its flush() does not wait for
        # that thread: a chunk's points could still be in memory after it. EventsWriter writes in this thread,
        # so its flush (an fsync) puts the chunk on disk before its checkpoint is saved.
        self.files, self.dirs = [], []
        for d in cell_dirs(run_path, cells, names) if enabled else []:
            d.mkdir(parents=True, exist_ok=True)
            # File names carry only the second; the suffix keeps a file opened in the same second (a resume
            # that stops at once) from overwriting the last one ("wb"), and the names in the order written.
            with writing(d):
                f = EventsWriter(str(d / "events"), f".{time.time_ns() % 10**9:09d}")
                # Readers drop earlier points at steps >= the START's; the checkpoint's own step stays, as its
                # rows stay in metrics.jsonl.
                start = SessionLog(status=SessionLog.START)
                f.write_event(Event(wall_time=time.time(), step=start_step + 1, session_log=start))
                f.flush()
            self.files.append(f)
            self.dirs.append(d)

    def write(self, rows: list[dict]) -> None:
        """The scalars of one chunk's rows (any cells, any steps), flushed to disk."""
        if not self.files:
            return
        groups = {}
        for row in rows:
            groups.setdefault((row.get("cell", 0), row["steps"]), []).append(row)
        now = time.time()
        for (cell, steps), mine in groups.items():
            values = [Summary.Value(tag=t, simple_value=v) for t, v in scalars(mine).items()]
            if values:  # one event holds the chunk's tags: one record to write per cell
                with writing(self.dirs[cell]):
                    self.files[cell].write_event(Event(wall_time=now, step=steps, summary=Summary(value=values)))
        for f, d in zip(self.files, self.dirs, strict=True):
            with writing(d):
                f.flush()

    def close(self) -> None:
        """Flush and close every file; safe to call twice. A failed write names the tree's directory."""
        while self.files:
            f, d = self.files.pop(), self.dirs.pop()
            with writing(d):
                f.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, exc_type, *exc) -> bool:
        while self.files:
            try:
                self.close()
            except OSError:
                # An error already on its way out (a full disk met elsewhere) is the one to report; what these
                # files could not take lies past the last checkpoint, which the next --resume writes again.
                if exc_type is None:
                    raise
        return False

