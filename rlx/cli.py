"""The `rlx` command line: the app, its entry point, and `rlx train`, `rlx envs`, `rlx list`.

The other commands register themselves on the app by domain: `show`/`sweep`/`report` (rlx.sweep_cli), the
sentiment study (rlx.sentiment.cli) and `analyze` (rlx.analyze_cli); all print through rlx.terminal.
Every rlx.errors.UserError (and every usage error) becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import typer
from rich.table import Table

from rlx import analyze_cli, sweep_cli
from rlx import config as C
from rlx.errors import UserError, no_space
from rlx.sentiment import cli as sentiment_cli
from rlx.terminal import console, err_console, eval_returns, say, with_ci, with_progress

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


def _resolve(env, noise, agent, seeds, steps, sets, experiment, deterministic=False):
    """Defaults, then the experiment module, then flags: (Config, seeds, the settings given explicitly)."""
    from rlx.experiment import Experiment, load

    if env is None and not experiment:
        raise UserError("give an env (e.g. `rlx train cartpole`) or --experiment; `rlx envs` lists envs.")
    exp = load(experiment) if experiment else Experiment(name="train")
    flags = {k: v for k, v in (("env", env), ("noise", noise), ("agent", agent), ("steps", steps)) if v is not None}
    flags.update(C.parse_set(sets or []))
    if deterministic:
        flags["deterministic"] = True
    base = exp.config()
    cfg = C.apply_overrides(base, flags)
    n_seeds = seeds if seeds is not None else exp.seeds
    if n_seeds <= 0:
        raise UserError(f"--seeds must be positive, got {n_seeds}.")
    # With --experiment, every setting the module resolves to was asked for, too (a resume checks them).
    given = {**C.flatten(C.to_dict(base)), **flags} if experiment else flags
    _say_fitted(flags, cfg)
    return cfg, n_seeds, given


def _say_fitted(asked: dict, cfg) -> None:
    """One line for each of steps / eval.every that was asked for and rounded to whole blocks of the agent."""
    from rlx import agents

    for key in ("steps", "eval.every"):
        value = C.coerce(key, int, asked[key]) if key in asked else C.get(cfg, key)
        if value != C.get(cfg, key):
            say(f"rlx: {key} {value:,} → {C.get(cfg, key):,}: {cfg.agent} runs whole blocks "
                f"of {agents.block_steps(cfg):,} env steps ({agents.block_text(cfg)}).")


@app.command()
def train(
    env: str | None = typer.Argument(None, help="Environment name (see `rlx envs`), e.g. cartpole, chain-30."),
    noise: str | None = typer.Option(None, "--noise", help="Exploration: none, eps, param, noisy or langevin (default eps)."),
    agent: str | None = typer.Option(None, "--agent", help="dqn (replay, target net; default) or pqn (λ-returns, no replay)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Seeds trained together in one vmapped program."),
    steps: int | None = typer.Option(None, "--steps", help="Env steps per seed (summed over its envs)."),
    sets: list[str] | None = typer.Option(None, "--set", help="Override a config key, e.g. --set optim.lr=1e-3 (repeatable)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds run directories."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out/--name from its last checkpoint."),
    name: str | None = typer.Option(None, "--name", help="Run directory name (default: ENV-NOISE-timestamp)."),
    experiment: str | None = typer.Option(None, "--experiment", help="Experiment module: a name from experiments/ or a path to a .py file."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Deterministic XLA ops on GPU (same seed, same "
                                       "numbers; slower scatters); CPU runs are deterministic anyway."),
    processes: int = typer.Option(1, "--processes", help="Run as one program over N processes started by Slurm "
                                  "(`srun -n N rlx train ... --processes N`), the seeds sharded over all their devices."),
):
    """Train a DQN-family agent on ENV for several seeds at once and print the greedy-evaluation table."""
    from rlx import distributed, loop, plots, runner
    from rlx.results import open_run

    loop.enable_compile_cache()
    cfg, n_seeds, given = _resolve(env, noise, agent, seeds, steps, sets, experiment, deterministic)
    _check_processes(cfg, processes)
    if not resume:  # before anything is written; a resumed run's seeds are known once its config is read
        distributed.check(processes, n_seeds)
    writes = distributed.is_primary(processes)
    name = name or (distributed.default_name(f"{cfg.env}-{cfg.noise}") if processes > 1 and not resume else None)
    run_dir = open_run(out, name, f"{cfg.env}-{cfg.noise}", resume=resume, writes=writes)
    if resume:
        cfg, n_seeds = _resumed(run_dir, given, seeds)
        distributed.check(processes, n_seeds)
    else:
        run_dir.write_config({"config": C.to_dict(cfg), "seeds": n_seeds})
    loop.use_deterministic_ops(cfg.deterministic)
    distributed.initialize(processes)
    console.quiet = not writes  # one table, from the process that writes the run
    path = run_dir.path
    console.print(f"[bold]rlx train[/] {cfg.env} noise={cfg.noise} seeds={n_seeds} steps={cfg.steps:,} "
                  f"{_replay_text(cfg)} → {path}")
    run = lambda on_chunk: runner.train(cfg, n_seeds, run_dir, resume=resume, on_chunk=on_chunk)  # noqa: E731
    try:
        summary = with_progress(cfg.steps, run, progress=eval_returns)
    except loop.Interrupted as e:
        err_console.print(f"rlx: {e}; continue with `rlx train {cfg.env} --resume --name {path.name} --out {out}`")
        raise typer.Exit(130) from None
    if writes:
        plots.run_figures(run_dir.read_metrics(), path, cfg.env, cfg.noise)
    _print_summary(summary, path)


def _resumed(run_dir, given: dict, seeds: int | None):
    """The saved run's config and seeds (rlx.results.reconcile). A --steps larger than the run's continues it to that
    total, which config.json records before training goes on."""
    from rlx.results import reconcile

    cfg, n_seeds, saved = reconcile(run_dir, "config", C.from_dict, given, seeds=seeds, extend=_check_extension)
    before = saved["config"].get("steps")
    if cfg.steps != before:
        say(f"rlx: continuing {run_dir.path.name} past its budget of {before:,} steps to {cfg.steps:,}.")
        run_dir.write_config({**saved, "config": C.to_dict(cfg)})
    return cfg, n_seeds


def _check_extension(cfg, steps: int) -> None:
    """Refuse to continue a run past its budget when one of its schedules spans that budget."""
    from rlx.agents import core

    spans = "; ".join(f"{k}: {why}" for k, why in core.budget_schedules(cfg).items())
    if spans:
        raise UserError(f"--resume --steps {steps:,}: the run's schedule spans its budget of {cfg.steps:,} steps "
                        f"({spans}), so it cannot be continued past it; resume without --steps, or train a new "
                        f"--name with --steps {steps:,}.")


def _check_processes(cfg, processes: int) -> None:
    from rlx import envs

    if processes > 1 and envs.stepped_on_host(cfg.env):
        raise UserError(f"{cfg.env} is stepped on the host (one emulator per seed in this process), so it cannot "
                        "span processes; drop --processes, or run several seeds in one process.")


def _replay_text(cfg) -> str:
    """The replay memory one seed needs (from shapes: nothing is allocated), or that the agent has none."""
    from rlx import agents, envs

    nbytes = agents.replay_bytes(cfg, envs.make(cfg.env))
    if not nbytes:
        return "replay none"
    unit, scale = ("MiB", 2**20) if nbytes >= 2**20 else ("KiB", 2**10)
    return f"replay {nbytes / scale:,.1f} {unit}/seed"


def _print_summary(summary: dict, path: Path):
    """The results table (statistics over the healthy seeds, the count left out beside them), then a warning line
    naming the seeds that diverged or went non-finite."""
    from rlx import health

    ev, h = summary["eval_return"], summary.get("health")
    table = Table(title=f"greedy evaluation after {summary['steps']:,} steps")
    for col in ("env", "noise", "seeds", "health", "mean [95% CI]", "IQM [95% CI]", "per seed", "wall s", "compile s"):
        table.add_column(col)
    table.add_row(summary["env"], summary["noise"], str(summary["seeds"]), health.status_text(h),
                  with_ci(ev, "mean") + health.note(h), with_ci(ev, "iqm") + health.note(h),
                  " ".join("—" if x is None else f"{x:.0f}" for x in ev["per_seed"]),
                  f"{summary['wall_seconds']:.1f}", f"{summary['compile_seconds']:.1f}")
    console.print(table)
    warning = health.warning(h)
    if warning and not console.quiet:  # one warning, from the process that prints the table
        err_console.print(warning, markup=False, highlight=False, soft_wrap=True)
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
        else:
            grid = " × ".join(f"{k}[{len(v)}]" for k, v in e.grid.items()) or "—"
            table.add_row(n, e.env, e.noise, str(e.seeds), grid, e.description)
    console.print(table)


sweep_cli.register(app)
sentiment_cli.register(app)
analyze_cli.register(app)


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
    except Exception as e:  # a write that found no room, wherever it happened; anything else is a bug to show
        full = no_space(e)
        if full is None:
            raise
        err_console.print(f"rlx: error: {_no_space_text(full, argv)}", markup=False, highlight=False, soft_wrap=True)
        return 2


RESUMABLE = frozenset({"train", "probe-sentiment"})  # the commands that continue a run only when given --resume
_ROOM = {errno.ENOSPC: "free space", errno.EDQUOT: "free space or raise the quota",
         errno.EFBIG: "raise the file-size limit (ulimit -f)"}


def _no_space_text(err: OSError, argv) -> str:
    """What to say about a write that found no room: the path and how to carry on. Every run stays resumable (its
    files are written atomically, checkpoints included), and a sweep resumes when it is started again."""
    args = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    command = next((a for a in args if not a.startswith("-")), "")
    again = "with --resume" if command in RESUMABLE and "--resume" not in args else "again"
    where = f" writing {err.filename}" if err.filename else ""
    reason = (err.strerror or "no space left on device").lower()
    return f"{reason}{where}; {_ROOM.get(err.errno, 'free space')}, then run the same command {again}"


if __name__ == "__main__":
    sys.exit(main())
