"""The experiment-grid commands: `rlx show`, `rlx sweep` and `rlx report` (the work is rlx.sweep's)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from rlx import config as C
from rlx.errors import UserError
from rlx.terminal import console, err_console, eval_returns, with_progress

SEEDS = "Seeds per cell (default: the experiment's)."
EXPERIMENT = "Experiment: a name from `rlx list` or a path to a .py file."
SETS = "Override a config key in every cell (repeatable); launcher.KEY=VALUE sets a Slurm job setting instead."
PROCESSES = ("One program over N processes: with --launcher local, run under `srun -n N`; with --launcher slurm, "
             "each array task runs N processes.")
LAUNCHER = ("local (this process), slurm (a submitit job array, one task per program, shared filesystem) or "
            "submitit-local (the same, as local processes).")


def register(app: typer.Typer) -> None:
    """Add show, sweep and report to the `rlx` app."""
    app.command("show")(show_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("report")(report_cmd)


def _experiment_and_flags(experiment: str, seeds: int | None, sets: list[str] | None, launcher: str = "local"):
    """The experiment, its seeds, the run-config overrides and the launcher settings (checked)."""
    from rlx import cluster
    from rlx.experiment import load

    if launcher not in cluster.LAUNCHERS:
        raise UserError(f"unknown launcher '{launcher}'; choose one of {', '.join(cluster.LAUNCHERS)}.")
    exp = load(experiment)
    n_seeds = seeds if seeds is not None else exp.seeds
    if n_seeds <= 0:
        raise UserError(f"--seeds must be positive, got {n_seeds}.")
    extra, launcher_sets = cluster.split_sets(C.parse_set(sets or []))
    return exp, n_seeds, extra, cluster.launcher_settings(exp.launcher, launcher_sets, launcher, exp.name)


def show_cmd(
    experiment: str = typer.Argument(..., help=EXPERIMENT + " With --config: an env (`rlx envs`)."),
    seeds: int | None = typer.Option(None, "--seeds", help=SEEDS),
    sets: list[str] | None = typer.Option(None, "--set", help=SETS),
    launcher: str = typer.Option("local", "--launcher", help="With slurm: also print the job array it submits."),
    config: bool = typer.Option(False, "--config", help="Print the resolved config of an env instead: every key "
                                "with its value, unit and meaning (with --agent, --noise, --set)."),
    agent: str | None = typer.Option(None, "--agent", help="With --config: dqn or pqn."),
    noise: str | None = typer.Option(None, "--noise", help="With --config: none, eps, param, noisy or langevin."),
):
    """Print an experiment's resolved grid and how `rlx sweep` will batch it into compiled programs, or with
    --config an env's resolved config, key by key."""
    from rlx import sweep

    if config:
        return show_config(experiment, agent, noise, sets)
    if agent or noise:
        raise UserError("--agent and --noise go with --config; an experiment's cells take them from its grid or --set.")
    exp, n_seeds, extra, settings = _experiment_and_flags(experiment, seeds, sets, launcher)
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
    if launcher == "slurm":
        from rlx import cluster

        steps = [cells[members[0]].cfg.steps for members in groups]
        for line in cluster.layout(groups, n_seeds, steps, settings):
            console.print(line, markup=False, highlight=False)


def show_config(env: str, agent: str | None, noise: str | None, sets: list[str] | None) -> None:
    """The config `rlx train ENV` would run with these flags: each key's value, unit and meaning."""
    from rlx import envs

    flags = {"env": env, **{k: v for k, v in (("agent", agent), ("noise", noise)) if v is not None}}
    cfg = C.apply_overrides(C.Config(), {**flags, **C.parse_set(sets or [])})
    envs.make(cfg.env)  # an unknown env is an error here, as in `rlx train`
    docs, batched = C.key_docs(), set(C.batched_keys())
    table = Table(title=f"rlx train {env}: resolved config (* = batched: a sweep over it shares one program)")
    for col in ("key", "value", "unit", "meaning"):
        table.add_column(col, overflow="fold")
    for key in C.keys():
        value = C.get(cfg, key)
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        table.add_row(key + (" *" if key in batched else ""), text, C.unit(key), docs[key])
    console.print(table)
    console.print("Units: steps count env steps summed over one seed's envs; *_updates keys count gradient updates.")


def sweep_cmd(
    experiment: str = typer.Argument(..., help=EXPERIMENT),
    seeds: int | None = typer.Option(None, "--seeds", help=SEEDS),
    sets: list[str] | None = typer.Option(None, "--set", help=SETS),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds sweep directories."),
    name: str | None = typer.Option(None, "--name", help="Sweep directory name (default: sweep-EXPERIMENT)."),
    devices: int | None = typer.Option(None, "--devices", help="Use at most this many local devices (default: all)."),
    launcher: str = typer.Option("local", "--launcher", help=LAUNCHER),
    processes: int = typer.Option(1, "--processes", help=PROCESSES),
):
    """Run an experiment's grid: cells batched into the fewest programs; started again, it resumes."""
    from rlx import cluster, distributed, loop, sweep
    from rlx.results import run_path

    if devices is not None and devices <= 0:
        raise UserError(f"--devices must be positive, got {devices}.")
    exp, n_seeds, extra, settings = _experiment_and_flags(experiment, seeds, sets, launcher)
    _check_processes(processes, n_seeds, launcher)
    if launcher == "slurm":
        cluster.check_cluster(settings)  # before anything is written: a wrong partition leaves no trace
    path = run_path(out, name or f"sweep-{exp.name}", "")
    writes = launcher != "local" or distributed.is_primary(processes)
    spec = sweep.prepare(exp, path, n_seeds, extra, writes=writes)
    loop.use_deterministic_ops(any(c["config"].get("deterministic") for c in spec["cells"]))
    if launcher == "local":
        distributed.initialize(processes)
        distributed.barrier("sweep.json")  # the other processes read what process 0 wrote
    console.quiet = not writes  # one table, from the process that writes the sweep
    pending = sweep.pending_groups(path, spec)
    console.print(f"[bold]rlx sweep[/] {exp.name}: {len(spec['cells'])} cells × {n_seeds} seeds in "
                  f"{len(spec['groups'])} program(s), {len(spec['groups']) - len(pending)} finished → {path}")
    unfinished = []
    try:
        if launcher == "local":
            for g in pending:
                _run_group(path, spec, g, devices, processes)
        else:
            unfinished = cluster.launch(path, pending, launcher, devices, settings, processes)
    except loop.Interrupted:
        sweep.report(path)
        err_console.print(f"rlx: sweep interrupted; finished cells are in {path}. Continue with the same command.")
        raise typer.Exit(130) from None
    except cluster.Detached as e:
        err_console.print(f"rlx: {e}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    if unfinished:
        _refuse_unfinished(path, unfinished, len(spec["groups"]))
    if writes:
        _print_sweep(sweep.report(path), spec, path)


def _check_processes(processes: int, seeds: int, launcher: str) -> None:
    """--processes: here, this must be one task of a Slurm step of that many; with --launcher slurm, each array
    task gets that many; submitit-local cannot start a multi-process program."""
    from rlx import distributed

    if launcher == "local":
        distributed.check(processes, seeds)
    elif launcher == "slurm":
        distributed.check_layout(processes, seeds)
    elif processes != 1:
        raise UserError("--processes needs Slurm to start the processes; use --launcher slurm, or srun -n N with "
                        "--launcher local.")


def _refuse_unfinished(path: Path, unfinished: list, programs: int):
    """Jobs that ended without finishing their group: one line each, then exit 1 (a failed job, not bad input)."""
    from rlx import cluster, sweep

    sweep.report(path)  # what did finish is on disk and in results.csv
    for u in unfinished:
        err_console.print(f"rlx: {u.line()}", markup=False, highlight=False, soft_wrap=True)
    err_console.print(f"rlx: {len(unfinished)} of {programs} program(s) did not finish; {cluster.RESUME_HINT}.",
                      markup=False, highlight=False, soft_wrap=True)  # fmt: skip
    raise typer.Exit(1)


def _run_group(path: Path, spec: dict, g: int, devices: int | None, processes: int):
    """Run one of a sweep's compiled programs in this process (and its peers) under the progress bar."""
    from rlx import sweep

    cells = [spec["cells"][i] for i in spec["groups"][g]]
    console.print(f"g{g}: " + "; ".join(" ".join(f"{k}={v}" for k, v in c["labels"].items()) for c in cells))
    run = lambda on_chunk: sweep.run_group(path, g, devices, on_chunk, processes)  # noqa: E731
    with_progress(cells[0]["config"]["steps"], run, progress=eval_returns)


def report_cmd(sweep_dir: Path = typer.Argument(..., help="A directory written by `rlx sweep`.")):
    """Rebuild a sweep's table, results.csv, summary.json and figures from what is on disk."""
    from rlx import sweep

    spec = sweep.read_spec(sweep_dir)
    _print_sweep(sweep.report(sweep_dir), spec, sweep_dir)


def _print_sweep(summary: dict, spec: dict, path: Path):
    from rlx import sweep

    axes = spec.get("axes") or list(spec["cells"][0]["labels"])
    chain = any("episodes_to_solve" in c for c in summary["cells"])
    table = Table(title=f"{summary['experiment']}: final greedy return per cell")
    stats = spec.get("report", [])
    cols = [*axes, "seeds", "health", "mean [95% CI]", "IQM [95% CI]", "per seed"] + (["solved, episodes"] if chain else [])
    for col in cols + [f"{n} [95% CI]" for n in stats]:
        table.add_column(col)
    for row in sweep.table_rows(summary, axes, stats):
        table.add_row(*row)
    console.print(table)
    for line in sweep.health_warnings(summary, axes):
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    _print_across(summary)
    if summary["unfinished"]:
        console.print(f"{len(summary['unfinished'])} cell(s) not finished yet; run the sweep again to continue them.")
    console.print(f"sweep directory: {path}")


def _print_across(summary: dict):
    """The across-env aggregates and the two-arm comparisons (rliable, stratified-bootstrap 95% CIs), if any."""
    from rlx import sweep

    cols, rows = sweep.aggregate_rows(summary)
    if rows:
        table = Table(title=f"{summary['experiment']}: final greedy return across envs [95% CI]")
        for col in cols:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    for line in sweep.comparison_lines(summary):
        console.print(line, markup=False)  # labels are data, not rich markup
