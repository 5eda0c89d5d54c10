"""Statistics across seeds (mean, IQM, bootstrap CI) and the run directory that holds the numbers."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from rlx.errors import UserError

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


# ---------------------------------------------------------------------------------------------
# Statistics across seeds


def _as_1d(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("need at least one value")
    return a


def iqm(x) -> float:
    """Interquartile mean: the mean of the middle 50% of values (scipy.stats.trim_mean(x, 0.25))."""
    a = np.sort(_as_1d(x))
    # Same cut as trim_mean: int() rounds the trimmed count down, so n < 4 trims nothing.
    cut = int(0.25 * a.size)
    return float(a[cut : a.size - cut].mean())


def bootstrap_ci(x, stat=np.mean, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of `stat` over seeds; the same `seed` gives the same interval."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    a = _as_1d(x)
    if a.size == 1:
        # One seed has no spread to resample; say so with a zero-width interval rather than pretending.
        v = float(stat(a))
        return v, v
    rng = np.random.default_rng(seed)
    samples = a[rng.integers(0, a.size, size=(n_boot, a.size))]
    stats = np.array([stat(s) for s in samples], dtype=np.float64)
    lo, hi = np.percentile(stats, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(lo), float(hi)


def summarize(per_seed) -> dict:
    """{"mean", "iqm", "ci95", "per_seed"} of one number per seed, as plain JSON-able Python floats.

    Non-finite seeds (a diverged run) are left out of the statistics and shown as None in per_seed.
    """
    a = np.asarray(per_seed, dtype=np.float64).ravel()
    finite = a[np.isfinite(a)]
    seeds = [float(v) if math.isfinite(v) else None for v in a.tolist()]
    if finite.size == 0:
        return {"mean": None, "iqm": None, "ci95": [None, None], "per_seed": seeds}
    lo, hi = bootstrap_ci(finite)
    return {"mean": float(finite.mean()), "iqm": iqm(finite), "ci95": [lo, hi], "per_seed": seeds}


# ---------------------------------------------------------------------------------------------
# JSON that is always valid: NaN/inf become null, numpy and array-likes become Python values


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic) or hasattr(obj, "__array__"):
        # Covers numpy and jax scalars/arrays without importing jax here.
        return _jsonable(np.asarray(obj).tolist())
    raise TypeError(f"cannot write {type(obj).__name__} to JSON: {obj!r}")


def _dumps(obj, **kw) -> str:
    return json.dumps(_jsonable(obj), allow_nan=False, **kw)


def _atomic_write(path: Path, text: str) -> None:
    # A kill mid-write must leave either the old file or the new one, never half of either.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _drop_torn_tail(path: Path) -> None:
    """Cut a final line left without its newline (a write killed midway), so appends start on a fresh line."""
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        # Scan backwards in blocks for the last newline; the file may be large.
        pos = end
        while pos > 0:
            start = max(0, pos - 65536)
            f.seek(start)
            i = f.read(pos - start).rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
        f.truncate(0)


# ---------------------------------------------------------------------------------------------
# The run directory


class RunDir:
    """The run directory runs/<name>/: config.json, metrics.jsonl, summary.json, plots, checkpoints/."""

    def __init__(self, path: Path | str, *, resume: bool = False):
        """Open (resume=True) or create a run directory; refuses to overwrite results or resume nothing."""
        self.path = Path(path)
        # Check before creating anything so a mistyped --resume leaves no empty directory behind.
        if resume and not (self.path / CONFIG).is_file():
            raise UserError(f"nothing to resume in {self.path}: no {CONFIG}; drop --resume to start a fresh run")
        self._check_writable()
        if not resume:
            held = [n for n in (METRICS, SUMMARY) if (self.path / n).exists()]
            if held:
                raise UserError(
                    f"{self.path} already holds results ({', '.join(held)}); "
                    "pass --resume to continue it, or --name/--out for a fresh run"
                )

    def _check_writable(self) -> None:
        # Fail now, not after an hour of training when the first metrics are written.
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.path, prefix=".write-test-")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            reason = e.strerror or str(e)
            raise UserError(f"cannot write to {self.path}: {reason}; pass --out to a writable directory") from None

    @property
    def checkpoint_dir(self) -> Path:
        """Where checkpoints go: path / "checkpoints" (created by the checkpointer, not here)."""
        return self.path / "checkpoints"

    def write_config(self, cfg: dict) -> None:
        """Write config.json (pretty, atomic)."""
        _atomic_write(self.path / CONFIG, _dumps(cfg, indent=2) + "\n")

    def read_config(self) -> dict:
        """Read config.json; UserError if it is missing or corrupt."""
        p = self.path / CONFIG
        try:
            cfg = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"no {CONFIG} in {self.path}; is this a run directory?") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"corrupt {CONFIG} in {self.path}: {e}") from None
        if not isinstance(cfg, dict):
            raise UserError(f"corrupt {CONFIG} in {self.path}: expected a JSON object, got {type(cfg).__name__}")
        return cfg

    def append_metrics(self, rows: list[dict]) -> None:
        """Append rows to metrics.jsonl, one JSON object per line (NaN written as null), flushed to disk."""
        p = self.path / METRICS
        if p.exists():
            _drop_torn_tail(p)
        text = "".join(_dumps(r) + "\n" for r in rows)
        with open(p, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        """All rows of metrics.jsonl ([] if none); a torn final line is skipped, corruption elsewhere is an error."""
        p = self.path / METRICS
        try:
            # errors="replace": garbage bytes from a crash become a JSON error below, not a decode crash here.
            lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        while lines and not lines[-1].strip():
            lines.pop()
        rows = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                problem = None if isinstance(row, dict) else f"expected a JSON object, got {type(row).__name__}"
            except ValueError as e:
                problem = str(e)
            if problem is not None:
                if i == len(lines) - 1:
                    break  # the run was killed mid-write; everything before it is intact
                raise UserError(f"corrupt {METRICS} in {self.path}, line {i + 1}: {problem}; fix or delete that line")
            rows.append(row)
        return rows

    def truncate_metrics(self, max_step: int) -> None:
        """Keep only rows with row["steps"] <= max_step (rows past the checkpoint being resumed); atomic."""
        p = self.path / METRICS
        if not p.exists():
            return
        keep = [r for r in self.read_metrics() if r.get("steps") is not None and r["steps"] <= max_step]
        _atomic_write(p, "".join(_dumps(r) + "\n" for r in keep))

    def write_summary(self, summary: dict) -> None:
        """Write summary.json (pretty, atomic, NaN written as null)."""
        _atomic_write(self.path / SUMMARY, _dumps(summary, indent=2) + "\n")
