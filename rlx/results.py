"""Statistics across seeds and envs (rliable: mean, median, IQM, optimality gap, stratified-bootstrap CIs,
probability of improvement, performance profiles) and the run directory that holds the numbers."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlx.errors import UserError, writing

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"


# ---------------------------------------------------------------------------------------------
# Statistics across seeds and envs: rliable's estimates (Agarwal et al. 2021) with stratified-bootstrap
# 95% CIs. rliable is imported where it is used: it pulls in arch, scipy and pandas, which every other
# command would pay for at start-up.

BOOTSTRAP_REPS = 2000  # replications per bootstrap, unless RLX_BOOTSTRAP_REPS says otherwise
BOOTSTRAP_SEED = 0
# The statistics every summary holds, in the order of the vector rliable bootstraps.
STATISTICS = ("mean", "median", "iqm", "optimality_gap")


@contextlib.contextmanager
def _seeded_bootstrap():
    """Seed numpy's global RNG for one rliable call, and restore the caller's state after.

    rliable 1.2's StratifiedBootstrap draws its resamples with np.random.choice (the global RNG) and ignores
    its random_state argument, and create_performance_profile takes no seed, so the global RNG is the one
    seed rliable honours. Reseeding per call makes each CI depend on its own scores alone: a resumed sweep
    writes the same results.csv whatever order its cells are summarised in.
    """
    state = np.random.get_state()
    np.random.seed(BOOTSTRAP_SEED)
    try:
        yield
    finally:
        np.random.set_state(state)


def bootstrap_reps() -> int:
    """Replications per bootstrap: RLX_BOOTSTRAP_REPS when set, else BOOTSTRAP_REPS.

    rliable loops over replications in Python (scipy's IQM and Mann-Whitney U cost ~0.1-1 ms each), so tests,
    which check wiring rather than intervals, set few; a report's CIs are only as steady as this number.
    """
    raw = os.environ.get("RLX_BOOTSTRAP_REPS", "").strip()
    if not raw:
        return BOOTSTRAP_REPS
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"RLX_BOOTSTRAP_REPS must be a positive integer, got {raw!r}; unset it for {BOOTSTRAP_REPS}.")
    return int(raw)


def _interval_estimates(scores, func) -> tuple[np.ndarray, np.ndarray]:
    """func(scores) as a vector and its 95% stratified-bootstrap CIs, shape (2, k): rows low, high. `scores`
    is a (runs x envs) matrix, or a list of them resampled independently (one per algorithm)."""
    from rliable import library

    with _seeded_bootstrap():
        point, ci = library.get_interval_estimates({"x": scores}, func, reps=bootstrap_reps())
    return np.atleast_1d(point["x"]), np.asarray(ci["x"]).reshape(2, -1)


def _statistics(median, gamma: float | None):
    """The STATISTICS of a (runs x envs) matrix as one vector, so that one bootstrap gives every CI. The
    optimality gap (rliable's: gamma minus the mean score clipped at gamma) only where gamma is known."""
    from rliable import metrics

    def stats(scores):
        out = [metrics.aggregate_mean(scores), median(scores), metrics.aggregate_iqm(scores)]
        if gamma is not None:
            out.append(metrics.aggregate_optimality_gap(scores, gamma))
        return np.array(out, dtype=np.float64)

    return stats


def _named(point: np.ndarray, ci: np.ndarray) -> dict:
    """{statistic: value, "cis": {statistic: [low, high]}}; statistics left out of the vector are None."""
    values = {n: None for n in STATISTICS}
    cis = {n: [None, None] for n in STATISTICS}
    for i, n in enumerate(STATISTICS[: point.size]):
        values[n] = float(point[i])
        cis[n] = [float(ci[0, i]), float(ci[1, i])]
    return {**values, "cis": cis}


def summarize(per_seed, optimal_return: float | None = None, healthy=None) -> dict:
    """Statistics across seeds of one number per seed, as plain JSON-able Python values.

    "mean", "median", "iqm" (25% trimmed mean) and "optimality_gap" (below optimal_return; None without
    one), each with its 95% stratified-bootstrap CI (rliable, bootstrap_reps() replications, BOOTSTRAP_SEED)
    in "cis"; "ci95" is the mean's CI, the one tables and figures show next to the mean; "per_seed".
    The median is over seeds: rliable's aggregate_median is a median over envs of per-env means, which for
    one env would only repeat the mean. Non-finite seeds are left out of the statistics and shown as None in
    per_seed; so are seeds whose `healthy` flag (per seed, rlx.health) is False, which per_seed shows as they are.
    With no finite healthy seed every statistic is None.
    """
    a = np.asarray(per_seed, dtype=np.float64).ravel()
    use = np.isfinite(a) if healthy is None else np.isfinite(a) & np.asarray(healthy, dtype=bool)
    finite = a[use]
    point, ci = np.empty(0), np.empty((2, 0))
    if finite.size:
        point, ci = _interval_estimates(finite[:, None], _statistics(np.median, optimal_return))
    stats = _named(point, ci)
    stats["ci95"] = list(stats["cis"]["mean"])
    stats["per_seed"] = [float(v) if math.isfinite(v) else None for v in a.tolist()]
    return stats


def score_matrix(per_env: list, optimal: list) -> tuple[np.ndarray | None, bool]:
    """(seeds x envs) matrix of per-seed scores for rliable, and whether it is normalised: divided by each
    env's optimal return when every env has a positive one, raw otherwise.

    Non-finite seeds are dropped, and every env keeps its first k finite seeds, k the fewest of any env: the
    stratified bootstrap resamples a fixed number of runs per env. None when some env has no finite seed.
    """
    cols = [np.asarray(s, dtype=np.float64).ravel() for s in per_env]
    cols = [c[np.isfinite(c)] for c in cols]
    k = min(c.size for c in cols)
    if k == 0:
        return None, False
    scores = np.stack([c[:k] for c in cols], axis=1)
    normalized = all(o is not None and o > 0 for o in optimal)
    return (scores / np.asarray(optimal, dtype=np.float64) if normalized else scores), normalized


def aggregate(per_env: list, optimal: list) -> dict | None:
    """Statistics across envs: rliable's aggregate mean, median (of per-env means), IQM and optimality gap
    (below 1, normalised scores only), with 95% CIs from a stratified bootstrap (seeds resampled within each
    env), on score_matrix(per_env, optimal). Adds "envs", "seeds" (per env) and "normalized"; None without
    a finite seed in some env."""
    from rliable import metrics

    scores, normalized = score_matrix(per_env, optimal)
    if scores is None:
        return None
    point, ci = _interval_estimates(scores, _statistics(metrics.aggregate_median, 1.0 if normalized else None))
    return {"envs": scores.shape[1], "seeds": scores.shape[0], "normalized": normalized, **_named(point, ci)}


def improvement(x_per_env: list, y_per_env: list) -> dict | None:
    """P(X > Y): rliable's probability that a run of X scores above a run of Y on the same env (ties count
    half), averaged over envs, with its 95% CI (runs of X and Y resampled independently within each env).
    Per-env ranks make it blind to normalisation. {"p", "ci95"}, or None without a finite seed somewhere."""
    from rliable import metrics

    x, _ = score_matrix(x_per_env, [None] * len(x_per_env))
    y, _ = score_matrix(y_per_env, [None] * len(y_per_env))
    if x is None or y is None:
        return None
    point, ci = _interval_estimates([x, y], metrics.probability_of_improvement)
    return {"p": float(point[0]), "ci95": [float(ci[0, 0]), float(ci[1, 0])]}


def performance_profiles(arms: dict, taus) -> tuple[dict, dict]:
    """rliable's performance profiles: per arm ({name: (runs x envs) scores}), the fraction of runs scoring
    above each tau, and its 95% CIs (2, len(taus)) from the stratified bootstrap."""
    from rliable import library

    with _seeded_bootstrap():
        return library.create_performance_profile(arms, np.asarray(taus, dtype=np.float64), reps=bootstrap_reps())


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


def dumps(obj, **kw) -> str:
    """Strict JSON text of obj: NaN/inf as null, numpy/jax values and Paths as plain Python ones."""
    return json.dumps(_jsonable(obj), allow_nan=False, **kw)


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to path through a temporary file and a rename, so readers see the old file or
    the new one. A failed write (a full disk) names path in its OSError."""
    # A kill mid-write must leave either the old file or the new one, never half of either.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with writing(path), os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_durably(path: Path, data: bytes) -> None:
    """Append data to path and fsync it; a failed write (a full disk) is cut off again, so the file ends as it
    did before, and its OSError names path."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        try:
            with writing(path):
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
        except OSError:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


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
# Metric rows and the run summary


def metric_rows(metrics: dict, eval_returns, steps: int, chunk: int, seeds: int, cells: int = 1,
                health: list | None = None) -> list[dict]:
    """Per-seed metric rows for one chunk (NaN stays NaN; it is written as null). The batch axis is
    cell-major; rows carry "cell" only when several cells share the program, and "health" (rlx.health) when given."""
    rows = []
    for b in range(cells * seeds):
        row = {"cell": b // seeds} if cells > 1 else {}
        row.update({"seed": b % seeds, "chunk": chunk, "steps": steps})
        row.update({k: float(v[b]) for k, v in metrics.items()})
        row["eval_return"] = float(np.mean(eval_returns[b]))
        if health is not None:
            row["health"] = health[b]
        rows.append(row)
    return rows


def episodes_to_solve(solved_at) -> dict:
    """Per-seed episode at which the greedy policy completed its optimal streak (None: never), the count
    solved, and the median over all seeds with unsolved seeds counted as never (None if most never did)."""
    per_seed = [int(e) if e >= 0 else None for e in solved_at]
    med = float(np.median([np.inf if e is None else e for e in per_seed]))
    return {"per_seed": per_seed, "solved": sum(e is not None for e in per_seed), "median": None if np.isinf(med) else med}


def run_summary(result) -> dict:
    """summary.json of one trained cell (a rlx.runner.CellResult): stable keys env, agent, noise, seeds, steps,
    wall_seconds, compile_seconds, devices, eval_return (its statistics over the healthy seeds), health (rlx.health);
    optimal_return and episodes_to_solve on envs with a known optimum (the N-chain)."""
    from rlx import health

    cfg = result.cfg
    summary = {
        "env": cfg.env,
        "agent": cfg.agent,
        "noise": cfg.noise,
        "seeds": result.seeds,
        "steps": result.steps,
        "wall_seconds": round(result.wall_seconds, 3),
        "compile_seconds": round(result.compile_seconds, 3),
        "devices": result.devices,
        "eval_return": summarize([float(np.mean(r)) for r in result.eval_returns], result.optimal_return,
                                 health.healthy(result.health, result.seeds)),
        "health": result.health,
    }
    if result.optimal_return is not None:
        summary["optimal_return"] = result.optimal_return
        summary["episodes_to_solve"] = episodes_to_solve(result.solved_at)
    return summary


# ---------------------------------------------------------------------------------------------
# Parameter snapshots (path.every_updates): RUN_DIR/path/<last step>.npz, written per chunk, read by analyze

PATH_DIR = "path"
_SNAPSHOT_FILE = re.compile(r"^(\d{10})\.npz$")


def write_snapshots(run_path: Path, steps: list[int], snaps) -> None:
    """Write one chunk's parameter snapshots as path/{last step}.npz: "steps" (k,) and, per params leaf,
    (batch, k, *leaf shape) float32 (the format `read_snapshots` reads). Written atomically."""
    import jax

    from rlx.nets import leaf_names

    folder = run_path / PATH_DIR
    folder.mkdir(exist_ok=True)
    snaps = jax.device_get(snaps)
    arrays = {"steps": np.asarray(steps, np.int64)}
    names = leaf_names(snaps)
    arrays.update({name: np.asarray(leaf, np.float32) for name, leaf in zip(names, jax.tree.leaves(snaps), strict=True)})
    final = folder / f"{steps[-1]:010d}.npz"
    tmp = folder / f".{final.stem}.tmp.npz"
    try:
        with writing(final):
            np.savez(tmp, **arrays)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(final)


def truncate_snapshots(run_path: Path, max_step: int) -> None:
    """Drop snapshot files written after the checkpoint a run resumes from (and torn temporary files)."""
    folder = run_path / PATH_DIR
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if f.name.startswith(".") or (f.suffix == ".npz" and f.stem.isdigit() and int(f.stem) > max_step):
            f.unlink()


@dataclass
class Snapshots:
    """The concatenated path: steps (n,) in time order and leaves[key] -> (batch, n, *leaf_shape)."""

    steps: np.ndarray
    leaves: dict[str, np.ndarray]
    files: list[Path]

    @property
    def batch(self) -> int:
        return next(iter(self.leaves.values())).shape[0]

    @property
    def n(self) -> int:
        return int(self.steps.size)


def _read_snapshot_file(f: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    try:
        with np.load(f, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    except Exception as e:  # zipfile, zlib, EOF and ValueError all mean the same thing here
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read {f}: corrupt or truncated ({reason}); delete it to analyze the other "
                        "snapshots") from None
    steps = data.pop("steps", None)
    if steps is None or steps.ndim != 1 or not np.issubdtype(steps.dtype, np.integer):
        raise UserError(f"{f} has no 1-D integer 'steps' array; it is not a path snapshot file")
    if not data:
        raise UserError(f"{f} holds no parameter arrays; it is not a path snapshot file")
    for k, a in data.items():
        if a.ndim < 2 or a.shape[1] != steps.size:
            raise UserError(f"{f}: {k} has shape {a.shape}, expected (batch, {steps.size}, ...) to match its steps")
    return steps.astype(np.int64), data


def read_snapshots(run_dir: Path | str) -> Snapshots:
    """Read and concatenate RUN_DIR/path/*.npz in time order; UserError for anything missing or corrupt."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir}")
    where = run_dir / PATH_DIR
    if not where.is_dir():
        raise UserError(f"{run_dir} has no path/ snapshots; train it with --set path.every_updates=M (gradient updates "
                        "between snapshots)")
    files = sorted((f for f in where.iterdir() if _SNAPSHOT_FILE.match(f.name)), key=lambda f: int(f.name[:10]))
    if not files:
        raise UserError(f"{where} holds no snapshot files ({'0' * 10}.npz, ...); train with --set path.every_updates=M")
    steps, parts, ref = [], [], None
    for f in files:
        s, data = _read_snapshot_file(f)
        shapes = {k: (a.shape[0],) + a.shape[2:] for k, a in data.items()}
        if ref is None:
            ref = shapes
        elif shapes != ref:
            raise UserError(f"{f} does not match {files[0].name} (other leaves or shapes); snapshots from "
                            f"different runs are mixed in {where}")
        steps.append(s)
        parts.append(data)
    all_steps = np.concatenate(steps)
    # A resumed run may write a chunk's snapshots again; the later file wins, as in metrics.jsonl.
    last = {int(t): i for i, t in enumerate(all_steps)}
    order = np.array([last[t] for t in sorted(last)], dtype=np.int64)
    leaves = {k: np.concatenate([p[k] for p in parts], axis=1)[:, order] for k in parts[0]}
    snaps = Snapshots(all_steps[order], leaves, files)
    if snaps.n < 3:
        raise UserError(f"{where} holds {snaps.n} snapshot(s); the path analysis needs at least 3 (train longer "
                        "or with a smaller path.every_updates)")
    return snaps


# ---------------------------------------------------------------------------------------------
# The run directory


class RunDir:
    """The run directory runs/<name>/: config.json, metrics.jsonl, summary.json, plots, checkpoints/."""

    def __init__(self, path: Path | str, *, resume: bool = False, writes: bool = True):
        """Open (resume=True) or create a run directory; refuses to overwrite results or resume nothing.
        writes=False: a process of a multi-process run other than the first (rlx.distributed), which reads the
        directory and leaves every write to the first; the write methods do nothing."""
        self.path, self.writes = Path(path), writes
        # Check before creating anything so a mistyped --resume leaves no empty directory behind.
        if resume and not (self.path / CONFIG).is_file():
            raise UserError(f"nothing to resume in {self.path}: no {CONFIG}; drop --resume to start a fresh run")
        if not writes:
            return
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
        if not self.writes:
            return
        atomic_write(self.path / CONFIG, dumps(cfg, indent=2) + "\n")

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
        if not self.writes:
            return
        p = self.path / METRICS
        if p.exists():
            _drop_torn_tail(p)
        append_durably(p, "".join(dumps(r) + "\n" for r in rows).encode("utf-8"))

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
        if not self.writes:
            return
        p = self.path / METRICS
        if not p.exists():
            return
        keep = [r for r in self.read_metrics() if r.get("steps") is not None and r["steps"] <= max_step]
        atomic_write(p, "".join(dumps(r) + "\n" for r in keep))

    def write_summary(self, summary: dict) -> None:
        """Write summary.json (pretty, atomic, NaN written as null)."""
        if not self.writes:
            return
        atomic_write(self.path / SUMMARY, dumps(summary, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------
# Opening a command's run directory, and the one resume policy


def run_path(out: Path, name: str | None, prefix: str, *, resume: bool = False) -> Path:
    """out/<name>; without a name a fresh `<prefix>-YYYYmmdd-HHMMSS`, or on resume the newest `<prefix>-*` run."""
    import datetime

    if name:
        if "/" in name or name in (".", ".."):
            raise UserError(f"--name must be a plain directory name, got {name!r}.")
        return Path(out) / name
    if resume:
        runs = [p for p in Path(out).glob(f"{prefix}-*") if (p / CONFIG).is_file()] if Path(out).is_dir() else []
        if not runs:
            raise UserError(f"nothing to resume: no run named {prefix}-* in {out}; pass --name of the run to resume.")
        return max(runs, key=lambda p: p.stat().st_mtime)
    return Path(out) / f"{prefix}-{datetime.datetime.now():%Y%m%d-%H%M%S}"


def open_run(out: Path, name: str | None, prefix: str, *, resume: bool, writes: bool = True) -> RunDir:
    """The RunDir a command writes to: run_path(out, name, prefix), which must hold a run to resume on resume."""
    return RunDir(run_path(out, name, prefix, resume=resume), resume=resume, writes=writes)


def reconcile(run: RunDir, section: str, load, given: dict, *, seeds: int | None = None, extend=None):
    """The resume policy of every command: the configuration saved in run's config.json wins, and each setting
    given explicitly (dotted keys in `given`; `seeds` unless None) must agree with it, else a UserError naming
    the keys. `load` rebuilds the config from config.json[section]; returns (config, seeds, config.json).

    A command whose runs can be continued past their budget passes `extend(config, steps)`: a `steps` larger than
    the saved one is then no difference but the new total (extend raises a UserError where the config cannot
    take it), and the config returned has it; a smaller one still differs. The caller records the new total."""
    from rlx import config as C

    saved = run.read_config()
    if not isinstance(saved.get(section), dict) or not isinstance(saved.get("seeds"), int):
        raise UserError(f"--resume: {run.path} is not a run of this command (its {CONFIG} has no '{section}'); "
                        "give the --name of one, or start a new --name.")
    cfg = load(saved[section])
    asked = C.apply_overrides(cfg, given)
    longer = extend is not None and C.get(asked, "steps") > C.get(cfg, "steps")
    differ = [k for k in C.keys(cfg) if C.get(asked, k) != C.get(cfg, k) and not (longer and k == "steps")]
    differ += ["seeds"] if seeds is not None and seeds != saved["seeds"] else []
    if differ:
        raise UserError(f"--resume: {', '.join(differ)} differ from the run in {run.path}; "
                        "drop those settings or start a new --name.")
    if longer:
        extend(cfg, C.get(asked, "steps"))
        cfg = C.apply_overrides(cfg, {"steps": C.get(asked, "steps")})
    return cfg, saved["seeds"], saved
