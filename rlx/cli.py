"""The `rlx` command line: parse, build the experiment, call the runner, render with rich.

Every rlx.errors.UserError (and every usage error) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

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
    noise: str | None = typer.Option(None, "--noise", help="Exploration: none, eps, param or noisy (default eps)."),
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
    from rlx import runner
    from rlx.results import RunDir

    runner.enable_compile_cache()
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
    except runner.Interrupted as e:
        err_console.print(f"rlx: {e}; continue with `rlx train {cfg.env} --resume --name {path.name} --out {out}`")
        raise typer.Exit(130) from None
    _print_summary(summary, path)


def _get(cfg, key):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _with_progress(total_steps: int, run):
    """Run run(on_chunk) under a rich progress bar of total_steps env steps per seed."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} steps"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[ret]}"),
    )
    import time

    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=total_steps, rate="compiling…", ret="")
        start = {"t": None, "steps": 0}

        def on_chunk(steps, rows):
            import numpy as np

            now = time.perf_counter()
            if start["t"] is None:  # first chunk includes compile time; rate is measured after it
                start.update(t=now, steps=steps)
                rate = ""
            else:
                rate = f"{(steps - start['steps']) / max(now - start['t'], 1e-9):,.0f} steps/s"
            ev = np.array([r["eval_return"] for r in rows])
            ex = np.array([r["return_mean"] for r in rows], dtype=float)
            ex_txt = f" | explore {np.nanmean(ex):.1f}" if np.isfinite(ex).any() else ""
            ret = f"eval {ev.mean():.1f} [{ev.min():.1f}, {ev.max():.1f}]{ex_txt}"
            progress.update(task, completed=steps, rate=rate, ret=ret)

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
    from rlx.experiment import available, load

    table = Table(title="experiments")
    for col in ("name", "env", "noise", "seeds", "grid", "description"):
        table.add_column(col)
    for n in available():
        e = load(n)
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
    from rlx import runner, sweep

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
    except runner.Interrupted:
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
    for col in [*axes, "seeds", "mean", "IQM", "95% CI", "per seed"] + (["solved, episodes"] if chain else []):
        table.add_column(col)
    for row in sweep.table_rows(summary, axes):
        table.add_row(*row)
    console.print(table)
    if summary["unfinished"]:
        console.print(f"{len(summary['unfinished'])} cell(s) not finished yet; run the sweep again to continue them.")
    console.print(f"sweep directory: {path}")


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
