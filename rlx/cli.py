"""The `rlx` command line: parse, build the experiment, call the runner, render with rich.

Every rlx.errors.UserError (and every usage error) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rlx import config as C
from rlx.errors import UserError

try:  # typer >= 0.2x vendors click; its usage errors derive from TyperException
    from typer.exceptions import TyperException as _CliError
except ImportError:  # pragma: no cover - older typer on top of click
    from click import ClickException as _CliError

app = typer.Typer(
    help="rlx: jitted, vmapped deep-RL exploration experiments on JAX.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Without a terminal rich assumes 80 columns, which wraps the results table; logs read better wider.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def _run_dir(out: Path, name: str | None, prefix: str, resume: bool) -> Path:
    """runs/<name>; without --name a fresh timestamped name, or on --resume the newest run with the prefix."""
    if name:
        if "/" in name or name in (".", ".."):
            raise UserError(f"--name must be a plain directory name, got {name!r}.")
        return out / name
    if resume:
        candidates = sorted(p for p in out.glob(f"{prefix}-*") if (p / "config.json").exists()) if out.is_dir() else []
        if not candidates:
            raise UserError(f"nothing to resume: no run named {prefix}-* in {out}; pass --name of the run to resume.")
        return max(candidates, key=lambda p: p.stat().st_mtime)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return out / f"{prefix}-{stamp}"


def _resolve(env, noise, seeds, steps, sets, experiment, agent=None):
    """Defaults, then the experiment module, then flags; returns (Config, seeds, explicit overrides)."""
    from rlx.experiment import Experiment, load

    exp = load(experiment) if experiment else Experiment(name="train")
    if env is None and not experiment:
        raise UserError("give an env (e.g. `rlx train cartpole`) or --experiment; `rlx envs` lists envs.")
    flags = {}
    if env is not None:
        flags["env"] = env
    if noise is not None:
        flags["noise"] = noise
    if agent is not None:
        flags["agent"] = agent
    if steps is not None:
        flags["steps"] = steps
    flags.update(C.parse_set(sets or []))
    cfg = C.apply_overrides(exp.config(), flags)
    n_seeds = seeds if seeds is not None else exp.seeds
    if n_seeds <= 0:
        raise UserError(f"--seeds must be positive, got {n_seeds}.")
    return cfg, n_seeds, flags, seeds is not None


@app.command()
def train(
    env: str | None = typer.Argument(None, help="Environment name (see `rlx envs`), e.g. cartpole, chain-30."),
    noise: str | None = typer.Option(None, "--noise", help="Exploration: none, eps, param, noisy or langevin (default eps)."),
    agent: str | None = typer.Option(None, "--agent", help="dqn (replay, target net; default) or pqn (λ-returns, no replay)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds trained together in one vmapped program."),
    steps: int | None = typer.Option(None, "--steps", help="Env steps per seed (summed over its envs)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a config key, e.g. --set dqn.lr=1e-3 (repeatable)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds run directories."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out/--name from its last checkpoint."),
    name: str | None = typer.Option(None, "--name", help="Run directory name (default: ENV-NOISE-timestamp)."),
    experiment: str | None = typer.Option(None, "--experiment", help="Experiment module: a name from experiments/ or a path to a .py file."),
):
    """Train a DQN-family agent on ENV for several seeds at once and print the greedy-evaluation table."""
    from rlx import loop, runner
    from rlx.results import RunDir

    loop.enable_compile_cache()
    cfg, n_seeds, flags, seeds_given = _resolve(env, noise, seeds, steps, sets, experiment, agent)
    path = _run_dir(out, name, f"{cfg.env}-{cfg.noise}", resume)
    run_dir = RunDir(path, resume=resume)
    if resume:
        saved = run_dir.read_config()
        saved_cfg = C.from_dict(saved["config"])
        # Flags given with --resume must agree with the run being resumed; the saved config wins otherwise.
        cfg_check = C.apply_overrides(saved_cfg, {k: v for k, v in flags.items()})
        if cfg_check != saved_cfg or (seeds_given and n_seeds != saved["seeds"]):
            diff = [k for k in C.keys() if _get(cfg_check, k) != _get(saved_cfg, k)]
            diff += ["seeds"] if seeds_given and n_seeds != saved["seeds"] else []
            raise UserError(f"--resume: {', '.join(diff)} differ from the run in {path}; drop those flags or start a new --name.")
        cfg, n_seeds = saved_cfg, int(saved["seeds"])
    else:
        run_dir.write_config({"config": C.to_dict(cfg), "seeds": n_seeds})

    console.print(f"[bold]rlx train[/] {cfg.env} noise={cfg.noise} seeds={n_seeds} steps={cfg.steps:,} → {path}")
    try:
        summary = _with_progress(
            cfg.steps, lambda on_chunk: runner.train(cfg, n_seeds, run_dir, resume=resume, on_chunk=on_chunk)
        )
    except loop.Interrupted as e:
        err_console.print(f"rlx: {e}; continue with `rlx train {cfg.env} --resume --name {path.name} --out {out}`")
        raise typer.Exit(130) from None
    _print_summary(summary, path)


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _returns(rows) -> str:
    """Progress text of an RL chunk: greedy-eval mean [min, max] over seeds, and the exploring return."""
    import numpy as np

    ev = np.array([r["eval_return"] for r in rows])
    ex = np.array([r["return_mean"] for r in rows], dtype=float)
    ex_txt = f" | explore {np.nanmean(ex):.1f}" if np.isfinite(ex).any() else ""
    return f"eval {ev.mean():.1f} [{ev.min():.1f}, {ev.max():.1f}]{ex_txt}"


def _with_progress(total_steps: int, run, *, unit: str = "steps", progress=_returns):
    """Run run(on_chunk) under a rich progress bar of total_steps (env steps per seed, or LM updates);
    progress(rows) is the text shown after each chunk."""
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
    import time

    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=total_steps, rate="compiling…", ret="")
        start = {"t": None, "steps": 0}

        def on_chunk(steps, rows):
            now = time.perf_counter()
            if start["t"] is None:  # first chunk includes compile time; rate is measured after it
                start.update(t=now, steps=steps)
                rate = ""
            else:
                r = (steps - start["steps"]) / max(now - start["t"], 1e-9)
                rate = f"{r:,.0f} {unit}/s" if r >= 100 else f"{r:.1f} {unit}/s"
            bar.update(task, completed=steps, rate=rate, ret=progress(rows))

        return run(on_chunk)


def _print_summary(summary: dict, path: Path):
    ev = summary["eval_return"]
    table = Table(title=f"greedy evaluation after {summary['steps']:,} steps")
    for col in ("env", "noise", "seeds", "mean", "IQM", "95% CI", "per seed", "wall s", "compile s"):
        table.add_column(col)
    table.add_row(
        summary["env"],
        summary["noise"],
        str(summary["seeds"]),
        f"{ev['mean']:.1f}",
        f"{ev['iqm']:.1f}",
        f"[{ev['ci95'][0]:.1f}, {ev['ci95'][1]:.1f}]",
        " ".join(f"{x:.0f}" for x in ev["per_seed"]),
        f"{summary['wall_seconds']:.1f}",
        f"{summary['compile_seconds']:.1f}",
    )
    console.print(table)
    console.print(f"run directory: {path}")


@app.command("envs")
def envs_cmd():
    """List the environments with their observation shape and number of actions."""
    from rlx import envs

    table = Table(title="environments")
    for col in ("name", "source", "obs shape", "actions"):
        table.add_column(col)
    for alias, source, shape, actions in envs.table():
        table.add_row(alias, source, str(tuple(shape)), str(actions))
    console.print(table)


@app.command("list")
def list_cmd():
    """List the experiment modules in experiments/ (`rlx show NAME` for one's grid)."""
    from rlx.experiment import Experiment, SentimentExperiment, available, load

    table = Table(title="experiments")
    for col in ("name", "env", "noise", "seeds", "grid", "description"):
        table.add_column(col)
    for n in available():
        e = load(n, (Experiment, SentimentExperiment))
        if isinstance(e, SentimentExperiment):
            table.add_row(n, "text (probe-sentiment)", "—", str(e.seeds), "—", e.description)
            continue
        grid = " × ".join(f"{k}[{len(v)}]" for k, v in e.grid.items()) or "—"
        table.add_row(n, e.env, e.noise, str(e.seeds), grid, e.description)
    console.print(table)


def _experiment_and_flags(experiment: str, seeds: int | None, sets: list[str] | None):
    from rlx.experiment import load

    exp = load(experiment)
    n_seeds = seeds if seeds is not None else exp.seeds
    if n_seeds <= 0:
        raise UserError(f"--seeds must be positive, got {n_seeds}.")
    return exp, n_seeds, C.parse_set(sets or [])


@app.command("show")
def show_cmd(
    experiment: str = typer.Argument(..., help="Experiment: a name from `rlx list` or a path to a .py file."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per cell (default: the experiment's)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a config key in every cell (repeatable)."),
):
    """Print an experiment's resolved grid and how `rlx sweep` will batch it into compiled programs."""
    from rlx import sweep

    exp, n_seeds, extra = _experiment_and_flags(experiment, seeds, sets)
    cells, groups, batched = sweep.describe(exp, n_seeds, extra)
    console.print(f"[bold]{exp.name}[/]: {exp.description}")
    console.print(f"grid: {' × '.join(f'{k} ({len(v)})' for k, v in exp.grid.items())} = {len(cells)} cells × {n_seeds} seeds")
    static = [a for a in exp.grid if a not in batched]
    console.print(f"batched in one program (vmapped): {', '.join(batched) or 'none'}; "
                  f"compiled separately: {', '.join(static) or 'none'}")
    table = Table(title=f"{len(groups)} compiled program(s)")
    for col in ("group", "cells", "runs (cells × seeds)", "steps", "settings"):
        table.add_column(col)
    for g, members in enumerate(groups):
        table.add_row(f"g{g}", str(len(members)), f"{len(members) * n_seeds}", f"{cells[members[0]].cfg.steps:,}",
                      "\n".join(cells[i].name() for i in members))
    console.print(table)


@app.command("sweep")
def sweep_cmd(
    experiment: str = typer.Argument(..., help="Experiment: a name from `rlx list` or a path to a .py file."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds per cell (default: the experiment's)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a config key in every cell (repeatable)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds sweep directories."),
    name: str | None = typer.Option(None, "--name", help="Sweep directory name (default: sweep-EXPERIMENT)."),
    devices: int | None = typer.Option(None, "--devices", help="Use at most this many local devices (default: all)."),
    launcher: str = typer.Option("local", "--launcher", help="local (this process), slurm (a submitit job array, "
                                 "one job per program, shared filesystem) or submitit-local (the same, as local processes)."),
):
    """Run an experiment's grid: cells batched into the fewest programs; started again, it resumes."""
    from rlx import loop, sweep

    if launcher not in sweep.LAUNCHERS:
        raise UserError(f"unknown launcher '{launcher}'; choose one of {', '.join(sweep.LAUNCHERS)}.")
    if devices is not None and devices <= 0:
        raise UserError(f"--devices must be positive, got {devices}.")
    exp, n_seeds, extra = _experiment_and_flags(experiment, seeds, sets)
    path = _run_dir(out, name or f"sweep-{exp.name}", "", False)
    spec = sweep.prepare(exp, path, n_seeds, extra)
    pending = sweep.pending_groups(path, spec)
    done = len(spec["groups"]) - len(pending)
    console.print(f"[bold]rlx sweep[/] {exp.name}: {len(spec['cells'])} cells × {n_seeds} seeds in "
                  f"{len(spec['groups'])} program(s), {done} finished → {path}")
    try:
        if launcher == "local":
            for g in pending:
                members = spec["groups"][g]
                cells = [spec["cells"][i]["labels"] for i in members]
                console.print(f"g{g}: " + "; ".join(" ".join(f"{k}={v}" for k, v in c.items()) for c in cells))
                steps = spec["cells"][members[0]]["config"]["steps"]
                _with_progress(steps, lambda on_chunk, g=g: sweep.run_group(path, g, devices, on_chunk))
        else:
            sweep.launch(path, pending, launcher, devices)
    except loop.Interrupted:
        sweep.report(path)
        err_console.print(f"rlx: sweep interrupted; finished cells are in {path}. Continue with the same command.")
        raise typer.Exit(130) from None
    summary = sweep.report(path)
    _print_sweep(summary, spec, path)


@app.command("report")
def report_cmd(sweep_dir: Path = typer.Argument(..., help="A directory written by `rlx sweep`.")):
    """Rebuild a sweep's table, results.csv, summary.json and figures from what is on disk."""
    from rlx import sweep

    spec = sweep._read_spec(sweep_dir)
    _print_sweep(sweep.report(sweep_dir), spec, sweep_dir)


def _print_sweep(summary: dict, spec: dict, path: Path):
    from rlx import sweep

    axes = spec.get("axes") or list(spec["cells"][0]["labels"])
    chain = any("episodes_to_solve" in c for c in summary["cells"])
    table = Table(title=f"{summary['experiment']}: final greedy return per cell")
    stats = spec.get("report", [])
    cols = [*axes, "seeds", "mean", "IQM", "95% CI", "per seed"] + (["solved, episodes"] if chain else [])
    for col in cols + [f"{n} [95% CI]" for n in stats]:
        table.add_column(col)
    for row in sweep.table_rows(summary, axes, stats):
        table.add_row(*row)
    console.print(table)
    if summary["unfinished"]:
        console.print(f"{len(summary['unfinished'])} cell(s) not finished yet; run the sweep again to continue them.")
    console.print(f"sweep directory: {path}")


data_app = typer.Typer(help="Datasets rlx uses (fetched from the package index, cached).", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(force: bool = typer.Option(False, "--force", help="Download again even if the cached copy verifies.")):
    """Download the labelled movie-review snippets (vaderSentiment 3.3.2's sdist) into the cache and verify them."""
    from rlx.sentiment import data

    where = data.fetch(force=force)
    splits = data.default_splits()
    console.print(f"sentiment data in {where}: {len(splits.train):,} train / {len(splits.dev):,} dev / "
                  f"{len(splits.test):,} test reviews")


def _lm_config(experiment: str | None, hidden: int | None, steps: int | None, sets: list[str] | None):
    """LM defaults, then the experiment module, then --set, then --hidden/--steps; (LMConfig, experiment)."""
    from rlx.experiment import SentimentExperiment, load
    from rlx.sentiment import lm

    exp = load(experiment, SentimentExperiment) if experiment else SentimentExperiment(name="probe-sentiment")
    settings = dict(exp.lm)
    settings.update(lm.parse_set(sets or []))
    settings.update({k: v for k, v in (("hidden", hidden), ("steps", steps)) if v is not None})
    return lm.config_from(settings), exp


@app.command("probe-sentiment")
def probe_sentiment(
    hidden: int | None = typer.Option(None, "--hidden", help="mLSTM units (default 128 on the CPU default; 64 … 4096)."),
    steps: int | None = typer.Option(None, "--steps", help="LM optimizer updates (each reads batch × window bytes)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Language models trained together in one vmapped program."),
    corpus: Path | None = typer.Option(None, "--corpus", help="Unlabelled training text, one document per line (streamed)."),
    labelled: Path | None = typer.Option(None, "--data", help="Labelled reviews: CSV/TSV with text and label columns, "
                                         "or a folder with pos/ and neg/ (default: the movie-review snippets)."),
    model: Path | None = typer.Option(None, "--model", help="Probe the LM of an earlier run directory instead of training."),
    sets: list[str] | None = typer.Option(None, "--set", help="LM setting, e.g. --set lr=1e-3 --set window=128 (repeatable)."),
    reps: int | None = typer.Option(None, "--reps", help="Subsamples per size in the data-efficiency curve (default 10)."),
    experiment: str | None = typer.Option(None, "--experiment", help="A sentiment experiment module, e.g. sentiment_neuron."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds run directories."),
    name: str | None = typer.Option(None, "--name", help="Run directory name (default: sentiment-timestamp)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the LM training of --out/--name from its checkpoint."),
):
    """Train a byte-level mLSTM LM, find its sentiment unit with an L1 probe, and compare with the controls."""
    from rlx import loop
    from rlx.results import RunDir
    from rlx.sentiment import lm, study

    loop.enable_compile_cache()
    cfg, exp = _lm_config(experiment, hidden, steps, sets)
    n_seeds = seeds if seeds is not None else exp.seeds
    n_reps = reps if reps is not None else exp.reps
    if n_seeds <= 0 or n_reps <= 0:
        raise UserError(f"--seeds and --reps must be positive, got {n_seeds} and {n_reps}.")
    if model is not None and (resume or corpus is not None):
        raise UserError("--model probes a trained LM: drop --resume and --corpus (they are for training one).")
    for flag, p in (("--corpus", corpus), ("--data", labelled), ("--model", model)):
        if p is not None and not p.exists():
            raise UserError(f"{flag} {p} does not exist.")
    path = _run_dir(out, name, "sentiment", resume)
    run_dir = RunDir(path, resume=resume)
    record = {"lm": dataclasses.asdict(cfg), "seeds": n_seeds, "corpus": corpus, "data": labelled, "model": model}
    if resume:
        saved = run_dir.read_config()
        if "lm" not in saved:
            raise UserError(f"--resume: {path} is not a probe-sentiment run (its config.json has no 'lm').")
        # The saved settings win; LM settings given again must agree with them.
        saved_cfg = lm.config_from(saved["lm"])
        if (sets or hidden or steps or experiment) and saved_cfg != cfg:
            raise UserError(f"--resume: the settings differ from the run in {path}; drop them or start a new --name.")
        cfg, n_seeds = saved_cfg, int(saved["seeds"])
        corpus = Path(saved["corpus"]) if saved.get("corpus") else None
        labelled = Path(saved["data"]) if saved.get("data") else labelled
    else:
        run_dir.write_config(record)
    what = f"probing {model}" if model else f"hidden={cfg.hidden} steps={cfg.steps:,} seeds={n_seeds}"
    console.print(f"[bold]rlx probe-sentiment[/] {what} → {path}")
    def go(on_chunk=None):
        return study.run(cfg, run_dir, seeds=n_seeds, corpus=corpus, labelled=labelled, model=model, resume=resume,
                         reps=n_reps, on_chunk=on_chunk, say=lambda m: console.print(m, markup=False, highlight=False))

    try:
        summary = go() if model else _with_progress(cfg.steps, go, unit="updates", progress=_bits_per_byte)
    except loop.Interrupted as e:
        err_console.print(f"rlx: {e}; continue with `rlx probe-sentiment --resume --name {path.name} --out {out}`")
        raise typer.Exit(130) from None
    _print_sentiment(summary, path)


def _bits_per_byte(rows) -> str:
    import numpy as np

    return f"train {np.mean([r['bits_per_byte'] for r in rows]):.3f} bits/byte"


def _print_sentiment(s: dict, path: Path):
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    table = Table(title=f"sentiment probe: {s['n_train']:,} train / {s['n_test']:,} test reviews, "
                        f"LM hidden {s['lm']['hidden']}, {s['lm']['steps']:,} updates, "
                        f"{s['lm']['bits_per_byte']:.3f} bits/byte on dev")
    for col in ("features", "test accuracy", "non-zero weights", "unit", "unit alone"):
        table.add_column(col)
    fp, u, c = s["full_probe"], s["unit"], s["controls"]
    table.add_row("trained LM cell state", pct(fp["accuracy"]), str(fp["nonzero"]),
                  f"{u['index']} ({'+' if u['sign'] > 0 else '−'})", pct(u["accuracy"]))
    table.add_row("random-init LM (control)", pct(c["random_init_full"]), "", "", pct(c["random_init_unit"]))
    table.add_row("bag of bytes (control)", pct(c["bag_of_bytes"]), "", "", "")
    console.print(table)
    if "mean_over_seeds" in s:
        m = s["mean_over_seeds"]
        console.print(f"mean over {s['lm']['seeds']} seeds: full probe {pct(m['full_probe_accuracy'])}, "
                      f"unit alone {pct(m['unit_accuracy'])}")
    console.print(f"run directory: {path} (summary.json, {', '.join(s['figures'])})")


@app.command("generate")
def generate_cmd(
    model: Path = typer.Argument(..., help="Run directory of an earlier `rlx probe-sentiment`."),
    n: int = typer.Option(200, "--bytes", help="How many bytes to sample."),
    prompt: str = typer.Option("", "--prompt", help="Text the sample continues (preprocessed like a review)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature (> 0)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    sentiment: str | None = typer.Option(None, "--sentiment", help="Clamp the run's sentiment unit: positive or negative."),
    unit: int | None = typer.Option(None, "--unit", help="Clamp this cell unit (with --value)."),
    value: float | None = typer.Option(None, "--value", help="The value the clamped unit is held at."),
):
    """Sample text from a trained LM, optionally with its sentiment unit held positive or negative."""
    import json

    from rlx.sentiment import study

    if sentiment is not None:
        if sentiment not in ("positive", "negative"):
            raise UserError(f"--sentiment must be positive or negative, got {sentiment!r}.")
        if unit is not None or value is not None:
            raise UserError("give --sentiment, or --unit with --value, not both.")
        try:
            summ = json.loads((model / "summary.json").read_text())
            unit, value = summ["unit"]["index"], summ["unit"]["clamp"][sentiment]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"--sentiment needs {model}/summary.json from a finished `rlx probe-sentiment`; "
                            "or give --unit and --value.") from None
    text = study.sample(model, n=n, prompt=prompt, temperature=temperature, seed=seed, unit=unit, value=value)
    console.print(prompt + text, markup=False, highlight=False)


analyze_app = typer.Typer(help="Analyses of finished runs (read from their run directory).", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")


def _ks(values: list[str] | None) -> list[int] | None:
    """--k 1,2,4 or --k 1 --k 2 -> [1, 2, 4]; None when not given."""
    if not values:
        return None
    out = []
    for v in values:
        for part in v.split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise UserError(f"--k expects integers (e.g. --k 1,2,4), got {part.strip()!r}.") from None
    return out


@analyze_app.command("path")
def analyze_path(
    run_dir: Path = typer.Argument(..., help="Run directory of a run that saved snapshots (path.every > 0), or a sweep's groups/gN."),
    seed: int = typer.Option(0, "--seed", help="Batch row (seed; cell-major in a sweep group) whose CDFs and "
                             "coordinate paths are drawn."),
    ks: list[str] | None = typer.Option(None, "--k", help="Directions kept per layer for the rebuilt-policy "
                                        "returns, e.g. --k 1,2,4 (repeatable; default 1, 2, 4, ... and n)."),
    out: Path | None = typer.Option(None, "--out", help="Where path.json and the figures go (default RUN_DIR/analysis)."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip evaluating the rebuilt policies (fast)."),
):
    """Policy-path analysis ("The Ladder in Chaos", 2024): temporal SVD per layer, detours, rebuilt-policy returns."""
    from rlx import analyze

    say = lambda m: console.print(m, markup=False, highlight=False)  # noqa: E731
    r = analyze.path(run_dir, seed=seed, ks=_ks(ks), out=out, evaluate=not no_eval, say=say)
    runs = f"{r['cells']} cells × {r['seeds']} seeds" if r["cells"] > 1 else f"{r['seeds']} seed(s)"
    table = Table(title=f"policy path of {r['env']}: {r['snapshots']} snapshots to step {int(r['steps'][-1]):,}; "
                        f"mean over {runs} (min–max)")
    for col in analyze.LAYER_COLUMNS:
        table.add_column(col)
    for row in analyze.layer_rows(r):
        table.add_row(*row)
    console.print(table)
    console.print("path dims: uncentered θ_1..θ_n as in the paper (its first direction mostly carries θ_0); "
                  "Δ dims: the displacement θ_t − θ_0. dims@β: fewest directions holding β of the singular values.")
    ret = r["returns"]
    if "skipped" in ret:
        console.print(f"rebuilt-policy returns skipped: {ret['skipped']}", markup=False, highlight=False)
    else:
        multi = len(ret["cells"]) > 1
        rt = Table(title=f"greedy return of θ_T (step {ret['step']:,}) rebuilt from each layer's top-k directions")
        for col in (["cell"] if multi else []) + ["k", "mean", "95% CI", "per seed"]:
            rt.add_column(col)
        for row in analyze.return_rows(r):
            rt.add_row(*row)
        console.print(rt)
    console.print(f"analysis: {r['out']} (path.json, {', '.join(r['figures'])})")


def main(argv=None) -> int:
    """Console-script entry point: one-line errors with exit code 2, 130 on Ctrl-C."""
    cmd = typer.main.get_command(app)
    try:
        rv = cmd.main(args=argv, prog_name="rlx", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except UserError as e:
        err_console.print(f"rlx: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except typer.Exit as e:
        return e.exit_code
    except _CliError as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:
            console.print(ctx.get_help())
            return 0
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(f"rlx: error: {e.format_message()}{hint}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("rlx: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
