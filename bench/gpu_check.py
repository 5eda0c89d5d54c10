"""`make gpu-check`: the one prepared script for a lent GPU machine (H100/H200, 16 cores, no network, about 15
minutes in all, its start included). It must finish in under 9 minutes and leave one JSON and one markdown table.

What it measures, each in a fresh worker process (this file with --worker) under its own time budget:

1. CartPole DQN (experiments/cartpole.py) at 1, 8, 64 and 512 seeds, 50,000 env steps per seed: wall, compile and
   train time (wall - compile), env steps/s summed over seeds;
2. Pong PQN with parameter noise (experiments/pong.py) until a 4-minute wall budget is spent: the greedy eval curve
   from the run directory's metric rows and frames/s (env steps x 4 frame-skip);
3. the sentiment study's mLSTM language model at 4096 units, batch 128 x 256 bytes: training bytes/s.

Why workers: a compiled JAX program cannot be interrupted, so a budget is only safe as a process the parent can
kill, and a crash (out of memory, a missing package) then costs one measurement, recorded as an error string, not
the check. The parent never imports jax: on a GPU it would hold most of the memory the workers need.

The GPU image lacks gymnax, ale-py >= 0.12.1 (its XLA interface runs on GPU from that release on) and some of their
dependencies: `make gpu-wheels` downloads them once on a machine with network, and this script installs the missing
ones offline from --wheels before any env code is imported. --tiny runs the same code at CPU sizes
(tests/test_gpu_check.py).

    python bench/gpu_check.py [--wheels bench/wheels] [--out bench/gpu_check_out] [--tiny]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAG = "GPUCHECK "  # a worker's result lines start with this; anything else it prints is not read
FRAME_SKIP = 4  # Atari frames per agent step (rlx.envs.atari)
EXIT_MARGIN_S = 20.0  # a Pong worker stops this long before its hard limit: checkpoint, emulators and exit
MIN_BUDGET_S = 10.0  # a measurement left less than this is not started

# What rlx's env code imports that the GPU image may lack, as (module, requirement), in install order: gymnax
# imports gymnasium and seaborn when imported and six in gymnax.utils; ale-py's XLA interface imports chex (which
# needs toolz). seaborn needs pandas, which is not carried: a binary wheel of 12 MB per Python, and in the image.
NEEDED = (
    ("six", "six>=1.16"),
    ("toolz", "toolz>=1.0"),
    ("chex", "chex>=0.1.86"),
    ("cloudpickle", "cloudpickle>=1.2"),
    ("farama_notifications", "farama-notifications>=0.0.1"),
    ("gymnasium", "gymnasium>=1.1,<1.4"),
    ("seaborn", "seaborn>=0.13"),
    ("gymnax", "gymnax>=1.0.1,<1.1"),
    ("ale_py", "ale-py>=0.12.1,<0.13"),
    # rlx's run summaries and event files: rliable (pure Python, on PyPI only as source; `make gpu-wheels` builds
    # its wheel) with arch, whose statsmodels needs patsy; scipy comes with jax and absl with optax.
    ("tensorboardX", "tensorboardX>=2.6"),
    ("patsy", "patsy>=0.5"),
    ("statsmodels", "statsmodels>=0.14"),
    ("arch", "arch>=5.3.1,<8"),
    ("rliable", "rliable>=1.2"),
)
SOURCE_ONLY = ("rliable",)  # built into a wheel by `make gpu-wheels` rather than downloaded as one
# Importable is not enough for these: an older ale-py steps its emulators only on the CPU backend.
MIN_VERSION = {"ale_py": ("ale-py", (0, 12, 1))}


@dataclass(frozen=True)
class Sizes:
    """What each measurement runs and its budget in seconds (a hard limit on its worker process)."""

    total_s: float  # the whole check, setup included; each budget is cut to what is left of it
    cartpole_seeds: tuple[int, ...]
    cartpole_steps: int
    cartpole_set: dict
    cartpole_s: float
    pong_seeds: int
    pong_steps: int | None  # None: experiments/pong.py's budget, so that its ε and lr schedules are the real run's
    pong_set: dict
    pong_s: float
    lm: dict
    lm_s: float


GPU = Sizes(
    total_s=510,  # 9 minutes less 30 s for the interpreter, the installs' checks and writing the outputs
    cartpole_seeds=(1, 8, 64, 512), cartpole_steps=50_000, cartpole_set={"eval.every": 25_000}, cartpole_s=165,
    lm={"hidden": 4096, "batch": 128, "window": 256, "updates": 10, "chunks": 3}, lm_s=80,
    # 16 blocks of 128 envs x 32 steps per chunk: about 10 eval points if 4 seeds run at ~80k frames/s
    pong_seeds=4, pong_steps=None, pong_set={"eval.every": 65_536}, pong_s=240,
)  # fmt: skip
TINY = Sizes(
    total_s=480,
    cartpole_seeds=(1, 2), cartpole_steps=4_000,
    cartpole_set={"eval.every": 2_000, "eval.episodes": 2, "dqn.learning_starts": 1_000}, cartpole_s=150,
    pong_seeds=2, pong_steps=64, pong_s=240,
    pong_set={"pqn.num_envs": 4, "pqn.rollout": 8, "pqn.minibatches": 2, "pqn.epochs": 1, "eval.every": 32,
              "eval.episodes": 1},
    lm={"hidden": 64, "batch": 8, "window": 32, "updates": 5, "chunks": 2}, lm_s=90,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Setup: the packages the GPU image lacks, from wheels, offline


def _version(dist: str) -> tuple[int, ...]:
    """The installed distribution's (major, minor, patch); (0,) when it is not installed."""
    try:
        m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", importlib.metadata.version(dist))
    except importlib.metadata.PackageNotFoundError:
        return (0,)
    return tuple(int(g) for g in m.groups() if g is not None) if m else (0,)


def missing() -> list[str]:
    """The requirements of NEEDED that this Python cannot import or has too old, found without importing them
    (gymnax would pull in jax)."""
    importlib.invalidate_caches()
    out = []
    for module, requirement in NEEDED:
        dist, least = MIN_VERSION.get(module, (None, ()))
        if importlib.util.find_spec(module) is None or (dist and _version(dist) < least):
            out.append(requirement)
    return out


def _tail(text, limit: int = 400) -> str:
    """The last line of a process's output (a traceback's exception, pip's ERROR), cut to fit a table cell."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1].replace("|", "/")[:limit] if lines else "no output"


def pip(*args: str) -> str | None:
    """`pip install ARGS` with the Python running this script (on the GPU machine the image's own, no venv);
    None on success, else the tail of pip's error."""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input", *args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # offline: seconds, not minutes
    except subprocess.TimeoutExpired:
        return "pip install took over 120 s"
    if p.returncode == 0:
        return None
    # pip ends on hints; its error: lines (the build's own among them) say what went wrong
    errors = [ln.strip() for ln in (p.stderr or p.stdout).splitlines() if ln.strip().lower().startswith("error")]
    return "; ".join(errors[-3:])[:400] if errors else _tail(p.stderr or p.stdout)


def install_missing(wheels: Path, site: Path) -> dict:
    """Install what NEEDED lists and this Python lacks, from `wheels` with no index (the GPU machine has no network).
    --no-deps: NEEDED is the whole list, and a resolver would look for an index to check pins such as gymnax's on
    jax. Where site-packages is read-only, they go to `site`, which the workers get on their PYTHONPATH."""
    info = {"wheels": str(wheels), "installed": missing(), "site": None, "errors": []}
    if not info["installed"]:
        return info
    args = ["--no-index", "--no-deps", "--find-links", str(wheels), *info["installed"]]
    err = pip(*args)
    if err and pip("--target", str(site), *args) is None:
        err, info["site"] = None, str(site)
        sys.path.insert(0, str(site))
    still = missing()
    if still:
        info["errors"].append(f"still missing: {', '.join(still)} (wheels in {wheels}: `make gpu-wheels`); {err or ''}")
    return info


def install_rlx(info: dict) -> None:
    """`pip install --no-deps -e .` when rlx is not importable. Offline, so without build isolation (it would fetch
    setuptools); if that fails the workers still import rlx from the checkout through PYTHONPATH."""
    if importlib.util.find_spec("rlx") is not None:
        return
    err = pip("--no-index", "--no-deps", "--no-build-isolation", "-e", str(ROOT))
    info["rlx"] = "installed with pip -e ." if err is None else f"from the checkout on PYTHONPATH (pip -e: {err})"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# Workers: one measurement each, in its own process; results as TAG-prefixed JSON lines on stdout


def emit(**fields) -> None:
    """One result line for the parent, flushed at once: a worker killed later still leaves what it had."""
    from rlx.results import dumps

    print(TAG + dumps(fields), flush=True)


def emit_device() -> None:
    """The device and jax version this worker sees (every worker says so; the parent keeps the first)."""
    import jax

    devices = jax.devices()
    emit(kind="device", devices=str(devices), device_kind=devices[0].device_kind, platform=devices[0].platform,
         jax=jax.__version__)  # fmt: skip


def _error(e: BaseException) -> str:
    """An exception as one line for the outputs: its message's first line (XLA puts the cause there)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {first}".replace("|", "/")[:400]


def _train_timed(cfg, seeds: int) -> dict:
    """`rlx train`'s path (rlx.runner.train into a throw-away run directory): wall, compile and train time from its
    summary, and the rate of the last chunk alone (steady state: no compile and no one-off work in it)."""
    from rlx import results as R
    from rlx import runner

    ends = []
    on_chunk = lambda n, rows: ends.append((n, time.perf_counter()))  # noqa: E731
    with tempfile.TemporaryDirectory() as d:
        s = runner.train(cfg, seeds, R.RunDir(Path(d) / "run"), on_chunk=on_chunk)
    run_s = s["wall_seconds"] - s["compile_seconds"]
    out = {"label": f"CartPole DQN, {seeds} seed{'s' * (seeds > 1)}", "seeds": seeds, "steps": s["steps"],
           "settings": f"{s['steps']:,} env steps per seed", "wall_s": s["wall_seconds"],
           "compile_s": s["compile_seconds"], "run_s": run_s, "throughput": s["steps"] * seeds / run_s,
           "unit": "env steps/s", "eval_return": s["eval_return"]["mean"]}  # fmt: skip
    if len(ends) >= 2:
        (s0, t0), (s1, t1) = ends[-2:]
        out["last_chunk_env_steps_per_s"] = (s1 - s0) * seeds / (t1 - t0)
        out["settings"] += f"; last chunk alone {_fmt(out['last_chunk_env_steps_per_s'])} env steps/s"
    return out


def work_cartpole(spec: dict) -> None:
    """CartPole DQN at experiments/cartpole.py's settings, one compiled program per seed count, counts in turn; a
    count that fails (out of memory, say) gives an error line and the next one still runs."""
    from rlx import config as C
    from rlx.experiment import load

    cfg = C.apply_overrides(load("cartpole").config(), {"steps": spec["steps"], **spec["set"]})
    for seeds in spec["seeds"]:
        try:
            emit(kind="cartpole", **_train_timed(cfg, seeds))
        except Exception as e:
            emit(kind="cartpole", seeds=seeds, error=_error(e))


def work_pong(spec: dict) -> None:
    """PQN with parameter noise on Pong at experiments/pong.py's settings until the wall budget: a line per chunk
    (its steps, seconds since the worker started), and after a chunk a stop the way Ctrl-C stops (checkpoint kept)
    when the next chunk, as long as the last, would not fit. Its rows stay in spec["run_dir"]."""
    from rlx import config as C
    from rlx import loop, runner
    from rlx import results as R
    from rlx.experiment import load

    steps = {"steps": spec["steps"]} if spec["steps"] else {}
    cfg = C.apply_overrides(load("pong").config(), {"noise": "param", **steps, **spec["set"]})
    run_dir = R.RunDir(Path(spec["run_dir"]))
    run_dir.write_config({"config": C.to_dict(cfg), "seeds": spec["seeds"]})
    t0, last = spec["t0"], [time.perf_counter()]

    def on_chunk(steps_done, rows):
        now = time.perf_counter()
        emit(kind="pong_chunk", steps=steps_done, seconds=now - t0)
        if steps_done < cfg.steps and 2 * now - last[0] - t0 > spec["budget_s"]:
            raise KeyboardInterrupt
        last[0] = now

    try:
        s = runner.train(cfg, spec["seeds"], run_dir, on_chunk=on_chunk)
        emit(kind="pong_done", steps=s["steps"], wall_s=s["wall_seconds"], compile_s=s["compile_seconds"])
    except loop.Interrupted as e:
        emit(kind="pong_stopped", steps=e.steps)


def _repo_corpus(folder: Path) -> Path:
    """This repository's Markdown and Python, one line per document: the GPU machine cannot download the study's
    data, and bytes/s does not depend on which bytes are read."""
    from rlx.sentiment import lm

    files = sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/*.md"), *ROOT.glob("rlx/**/*.py")])
    lines = [ln for f in files for ln in f.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    return lm.write_corpus(lines, folder / "corpus.txt")


def _lm_program(cfg, folder: Path):
    """(state, compiled chunk, compile seconds, byte streams, first windows) for one seed, vmapped and donated as
    rlx.sentiment.lm.train runs it; compile timed alone through lower().compile()."""
    import jax
    import jax.numpy as jnp

    from rlx.sentiment import lm

    init, chunk = lm.make_train(cfg)
    keys, _ = lm.seed_states(cfg, 1)
    state = jax.jit(jax.vmap(init))(keys)
    streams = lm.ByteStreams(_repo_corpus(folder), cfg.batch, cfg.window)
    windows = jnp.asarray(streams.take(cfg.chunk))
    t = time.perf_counter()
    run = jax.jit(jax.vmap(chunk, in_axes=(0, None)), donate_argnums=0).lower(state, windows).compile()
    return state, run, time.perf_counter() - t, streams, windows


def work_lm(spec: dict) -> None:
    """Training throughput of the sentiment study's byte-level mLSTM (rlx.sentiment.lm): one warm-up chunk, then
    `chunks` timed chunks of `updates` updates, the host byte streams included (as `make bench` times it)."""
    import jax
    import jax.numpy as jnp

    from rlx.sentiment import lm

    n, chunks = spec["updates"], spec["chunks"]
    cfg = lm.LMConfig(hidden=spec["hidden"], batch=spec["batch"], window=spec["window"], steps=n * (chunks + 1),
                      chunk=n).check()  # fmt: skip
    state, run, compile_s, streams, windows = _lm_program(cfg, Path(spec["dir"]))
    state, loss = run(state, windows)
    jax.block_until_ready(loss)
    t = time.perf_counter()
    for _ in range(chunks):
        state, loss = run(state, jnp.asarray(streams.take(n)))
    jax.block_until_ready(loss)
    run_s = time.perf_counter() - t
    streams.close()
    dtype = jnp.dtype(cfg.compute_dtype()).name
    emit(kind="lm", label=f"mLSTM-{cfg.hidden} LM, 1 seed",
         settings=f"batch {cfg.batch} x window {cfg.window}, {dtype} matmuls, {chunks * n} timed updates",
         wall_s=None, compile_s=compile_s, run_s=run_s, throughput=chunks * n * cfg.batch * cfg.window / run_s,
         unit="bytes/s", ms_per_update=1000 * run_s / (chunks * n), bits_per_byte=float(loss[0]) / math.log(2.0))  # fmt: skip


WORKERS = {"cartpole": work_cartpole, "pong": work_pong, "lm": work_lm}


def worker_main(name: str, spec: dict) -> None:
    """Entry of a worker process. rlx is imported before jax, as `rlx train` does (it exposes CPU cores as devices)."""
    spec = {**spec, "t0": time.perf_counter()}
    import rlx  # noqa: F401

    emit_device()
    WORKERS[name](spec)


# ---------------------------------------------------------------------------------------------
# The parent: budgets, workers, results


@dataclass
class Check:
    """One run of the check: its sizes, its overall deadline, the workers' PYTHONPATH and a scratch folder."""

    sizes: Sizes
    pythonpath: list[str]
    tmp: Path
    end: float = 0.0
    device: dict = field(default_factory=dict)

    def budget(self, own_s: float) -> float:
        """A measurement's budget cut to what is left of the whole check's."""
        return min(own_s, self.end - time.monotonic())

    def run_worker(self, name: str, spec: dict, budget_s: float) -> tuple[list[dict], str | None]:
        """Run one worker with a hard limit of budget_s seconds: (its result lines, an error string or None)."""
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec", json.dumps(spec)]
        path = os.pathsep.join(p for p in [*self.pythonpath, os.environ.get("PYTHONPATH", "")] if p)
        env = {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "RLX_COMPILE_CACHE": "off"}
        try:
            p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget_s)
            out, error = p.stdout, None if p.returncode == 0 else f"worker exit {p.returncode}: {_tail(p.stderr)}"
        except subprocess.TimeoutExpired as e:
            out, error = e.stdout, f"stopped at its budget of {budget_s:.0f} s"
        lines = _result_lines(out)
        self.device = self.device or next((r for r in lines if r["kind"] == "device"), {})
        return lines, error


def _result_lines(out) -> list[dict]:
    """The TAG lines of a worker's stdout, parsed; a line cut by a kill is dropped."""
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    rows = []
    for line in (out or "").splitlines():
        if line.startswith(TAG):
            try:
                rows.append(json.loads(line[len(TAG) :]))
            except ValueError:
                pass
    return rows


def measure_cartpole(check: Check) -> dict:
    """One measurement per seed count, all from one worker (one interpreter start and jax initialisation)."""
    sz = check.sizes
    spec = {"seeds": list(sz.cartpole_seeds), "steps": sz.cartpole_steps, "set": sz.cartpole_set}
    lines, error = check.run_worker("cartpole", spec, check.budget(sz.cartpole_s))
    got = {r["seeds"]: r for r in lines if r["kind"] == "cartpole"}
    out = {}
    for n in sz.cartpole_seeds:
        r = got.get(n) or {"seeds": n, "error": error or "the worker gave no result"}
        out[f"cartpole_dqn_{n}"] = {"label": f"CartPole DQN, {n} seed{'s' * (n > 1)}", "error": None, **r}
    return out


def eval_curve(run: Path) -> list[dict]:
    """The greedy eval return after each chunk (mean over seeds, and per seed) from the run directory's metric rows."""
    from rlx import results as R

    if not (run / R.CONFIG).is_file():
        return []
    by_step: dict[int, list] = {}
    for row in R.RunDir(run, resume=True).read_metrics():  # resume=True: the one way to open a run that has rows
        by_step.setdefault(row["steps"], []).append(row.get("eval_return"))
    curve = []
    for steps, values in sorted(by_step.items()):
        finite = [v for v in values if v is not None and math.isfinite(v)]
        curve.append({"steps": steps, "mean": sum(finite) / len(finite) if finite else None, "per_seed": values})
    return curve


def pong_rate(chunks: list[dict], done: dict | None) -> tuple[float, float] | None:
    """(seconds, agent steps per seed) the rate is taken over: from the first chunk's end to the last's (no compile
    in it, evaluation included); with one chunk only, a finished run's train time (wall - compile)."""
    if len(chunks) >= 2:
        return chunks[-1]["seconds"] - chunks[0]["seconds"], chunks[-1]["steps"] - chunks[0]["steps"]
    if done and done["wall_s"] > done["compile_s"]:
        return done["wall_s"] - done["compile_s"], done["steps"]
    return None


def measure_pong(check: Check) -> dict:
    """Pong PQN with parameter noise in one worker that stops itself inside the budget; the run directory stays in
    the scratch folder for the curve."""
    sz, run = check.sizes, check.tmp / "pong"
    budget = check.budget(sz.pong_s)
    spec = {"seeds": sz.pong_seeds, "steps": sz.pong_steps, "set": sz.pong_set, "run_dir": str(run),
            "budget_s": budget - EXIT_MARGIN_S}  # fmt: skip
    lines, error = check.run_worker("pong", spec, budget)
    chunks = [r for r in lines if r["kind"] == "pong_chunk"]
    done = next((r for r in lines if r["kind"] == "pong_done"), None)
    rate, curve = pong_rate(chunks, done), eval_curve(run)
    steps = chunks[-1]["steps"] if chunks else 0
    m = {"label": "Pong PQN, parameter noise", "seeds": sz.pong_seeds, "steps": steps, "chunks": len(chunks),
         "settings": f"experiments/pong.py, {sz.pong_seeds} seeds, {steps:,} agent steps per seed in {len(chunks)} "
                     f"chunks, {budget:.0f} s budget",
         "wall_s": chunks[-1]["seconds"] if chunks else None, "compile_s": done["compile_s"] if done else None,
         "run_s": rate[0] if rate else None, "unit": "frames/s", "eval_curve": curve, "error": None,
         "throughput": rate[1] * sz.pong_seeds * FRAME_SKIP / rate[0] if rate and rate[0] > 0 else None}  # fmt: skip
    if m["throughput"] is None or not curve:
        m["error"] = error or "fewer than two chunks finished and the run did not end: no rate"
    elif error:
        m["note"] = f"{error}; the chunks finished before it count"
    return {"pong_pqn_param": m}


def measure_lm(check: Check) -> dict:
    """The mLSTM language model's training throughput in one worker."""
    sz = check.sizes
    (check.tmp / "lm").mkdir(exist_ok=True)
    lines, error = check.run_worker("lm", {**sz.lm, "dir": str(check.tmp / "lm")}, check.budget(sz.lm_s))
    r = next((r for r in lines if r["kind"] == "lm"), None)
    return {"lm_mlstm": {"error": None, **r} if r else {"label": f"mLSTM-{sz.lm['hidden']} LM", "error": error}}


def run_all(check: Check) -> dict:
    """Every measurement in turn, CartPole, LM, then Pong (the longest, last so that it takes what is left); one
    that finds too little of the total budget left is recorded as not run."""
    measurements = {}
    order = (("cartpole_dqn", measure_cartpole), ("lm_mlstm", measure_lm), ("pong_pqn_param", measure_pong))
    for key, measure in order:
        if check.budget(math.inf) < MIN_BUDGET_S:
            measurements[key] = {"label": key, "error": "not run: the check's total budget was spent"}
            continue
        got = measure(check)
        for key, m in got.items():
            print(f"gpu_check: {key}: {m.get('error') or _fmt(m.get('throughput'))} {m.get('unit', '')}", flush=True)
        measurements.update(got)
    return measurements


# ---------------------------------------------------------------------------------------------
# Output: gpu_check.json and gpu_check.md


def _fmt(x, digits: int = 1) -> str:
    """A number for the table: thousands separated, '—' when there is none."""
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.{digits}f}"


def markdown(rep: dict) -> str:
    """The measurements as markdown to paste into docs/benchmarks.md: a heading with machine and command, one row
    per measurement (errors in the throughput column), and Pong's eval curve."""
    dev = rep.get("device", {})
    cmd = "python bench/gpu_check.py" + (" --tiny" if rep["tiny"] else "")
    lines = [f"### {rep['date'][:10]}: GPU check on {dev.get('device_kind', 'an unknown device')}", "",
             f"- **Machine:** `{dev.get('devices', '?')}`, {rep['host']['cpus']} CPU cores; jax {dev.get('jax', '?')}, "
             f"Python {rep['host']['python']}.",
             f"- **Command:** `{cmd}` ({rep['seconds']:.0f} s in all).", "",
             "| measurement | settings | wall s | compile s | run s | throughput |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for m in rep["measurements"].values():
        rate = f"error: {m['error']}" if m["error"] else f"{_fmt(m.get('throughput'))} {m.get('unit', '')}"
        lines.append(f"| {m.get('label', '?')} | {m.get('settings', '')} | {_fmt(m.get('wall_s'))} | "
                     f"{_fmt(m.get('compile_s'))} | {_fmt(m.get('run_s'))} | {rate} |")  # fmt: skip
    curve = rep["measurements"].get("pong_pqn_param", {}).get("eval_curve") or []
    if curve:
        lines += ["", "Pong greedy eval return after each chunk:", "", "| agent steps per seed | mean | per seed |",
                  "| ---: | ---: | --- |"]  # fmt: skip
        for p in curve:
            lines.append(f"| {p['steps']:,} | {_fmt(p['mean'])} | {' '.join(_fmt(v, 0) for v in p['per_seed'])} |")
    return "\n".join(lines) + "\n"


def write_outputs(rep: dict, out: Path) -> None:
    """gpu_check.json (everything) and gpu_check.md (the table) in out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
    (out / "gpu_check.md").write_text(markdown(rep), encoding="utf-8")


def check_main(args) -> int:
    """Install what is missing, run every measurement, write the outputs; exit 1 if anything failed."""
    t0 = time.monotonic()
    sizes = TINY if args.tiny else GPU
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        setup = install_missing(Path(args.wheels), Path(tmp) / "site")
        install_rlx(setup)
        check = Check(sizes, [str(ROOT)] + ([setup["site"]] if setup["site"] else []), Path(tmp), t0 + sizes.total_s)
        measurements = run_all(check)
    rep = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "tiny": args.tiny,
           "device": check.device, "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
           "machine": platform.machine()}, "setup": setup, "seconds": time.monotonic() - t0,
           "measurements": measurements}  # fmt: skip
    write_outputs(rep, Path(args.out))
    print(markdown(rep), flush=True)
    failed = setup["errors"] or any(m["error"] for m in measurements.values())
    return 1 if failed else 0


def main() -> int:
    """The check (default), one worker (--worker, used by the check itself), or the requirements (--requirements,
    for `make gpu-wheels`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", default=str(ROOT / "bench" / "wheels"), help="folder of wheels (make gpu-wheels)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "gpu_check_out"), help="where the JSON and markdown go")
    ap.add_argument("--tiny", action="store_true", help="CPU sizes: the same code path in about 1.5 minutes on 2 cores")
    ap.add_argument("--requirements", action="store_true", help="print the requirements to download as wheels")
    ap.add_argument("--source-requirements", action="store_true", help="print those to build into wheels")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--spec", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.requirements or args.source_requirements:
        print(" ".join(req for module, req in NEEDED if (module in SOURCE_ONLY) == args.source_requirements))
        return 0
    if args.worker:
        worker_main(args.worker, json.loads(args.spec))
        return 0
    return check_main(args)


if __name__ == "__main__":
    sys.exit(main())
