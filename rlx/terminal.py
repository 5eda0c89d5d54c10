"""What every `rlx` command prints through: the stdout and stderr consoles and the training progress bar.

Its own module so that the RL commands (rlx.cli) and the domain commands (rlx.sentiment.cli,
rlx.analyze_cli) share them without importing one another.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from rich.console import Console

# Without a terminal rich assumes 80 columns, which wraps the results table; logs read better wider.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def say(message: str) -> None:
    """Print one progress message as plain text (no rich markup or highlighting)."""
    console.print(message, markup=False, highlight=False)


def with_ci(stats: dict, name: str, spec: str = ".1f") -> str:
    """A statistic of a results.summarize() dict with its 95% stratified-bootstrap CI, each number formatted by
    spec: "482.1 [455.0, 500.0]"; None as "—"."""
    text = [("—" if v is None else format(v, spec)) for v in (stats[name], *stats["cis"][name])]
    return f"{text[0]} [{text[1]}, {text[2]}]"


def with_progress(total: int, run: Callable, *, progress: Callable[[list[dict]], str], unit: str = "steps"):
    """Return run(on_chunk) run under a rich progress bar of `total` (env steps per seed, or LM updates);
    on_chunk(done, rows) advances it, and progress(rows) is the text shown after each chunk."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn(f"{{task.completed:,.0f}}/{{task.total:,.0f}} {unit}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[ret]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=total, rate="compiling…", ret="")
        start = {"t": None, "done": 0}

        def on_chunk(done, rows):
            now = time.perf_counter()
            if start["t"] is None:  # the first chunk includes compile time; the rate is measured after it
                start.update(t=now, done=done)
                rate = ""
            else:
                r = (done - start["done"]) / max(now - start["t"], 1e-9)
                rate = f"{r:,.0f} {unit}/s" if r >= 100 else f"{r:.1f} {unit}/s"
            bar.update(task, completed=done, rate=rate, ret=progress(rows))

        return run(on_chunk)


def eval_returns(rows) -> str:
    """Progress text of an RL chunk: greedy-eval mean [min, max] over seeds, and the exploring return."""
    import numpy as np

    ev = np.array([r["eval_return"] for r in rows])
    ex = np.array([r["return_mean"] for r in rows], dtype=float)
    ex_txt = f" | explore {np.nanmean(ex):.1f}" if np.isfinite(ex).any() else ""
    return f"eval {ev.mean():.1f} [{ev.min():.1f}, {ev.max():.1f}]{ex_txt}"
