"""`rlx analyze path`: analyses of finished runs, read from their run directory (the numbers are rlx.analyze's)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from rlx.errors import UserError
from rlx.terminal import console, say


def register(app: typer.Typer) -> None:
    """Add the `analyze` command group to the `rlx` app."""
    analyze_app = typer.Typer(help="Analyses of finished runs (read from their run directory).", no_args_is_help=True)
    analyze_app.command("path")(analyze_path)
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


def analyze_path(
    run_dir: Path = typer.Argument(..., help="Run directory of a run that saved snapshots (path.every_updates > 0), or a sweep's groups/gN."),
    seed: int = typer.Option(0, "--seed", help="Batch row (seed; cell-major in a sweep group) whose CDFs and "
                             "coordinate paths are drawn."),
    ks: list[str] | None = typer.Option(None, "--k", help="Directions kept per layer for the rebuilt-policy "
                                        "returns, e.g. --k 1,2,4 (repeatable; default 1, 2, 4, ... and n)."),
    out: Path | None = typer.Option(None, "--out", help="Where path.json and the figures go (default RUN_DIR/analysis)."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip evaluating the rebuilt policies (fast)."),
):
    """Policy-path analysis ("The Ladder in Chaos", 2024): temporal SVD per layer, detours, rebuilt-policy returns."""
    from rlx import analyze

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
    _print_returns(r)
    console.print(f"analysis: {r['out']} (path.json, {', '.join(r['figures'])})")


def _print_returns(r: dict) -> None:
    from rlx import analyze

    ret = r["returns"]
    if "skipped" in ret:
        console.print(f"rebuilt-policy returns skipped: {ret['skipped']}", markup=False, highlight=False)
        return
    multi = len(ret["cells"]) > 1
    rt = Table(title=f"greedy return of θ_T (step {ret['step']:,}) rebuilt from each layer's top-k directions")
    for col in (["cell"] if multi else []) + ["k", "mean", "95% CI", "per seed"]:
        rt.add_column(col)
    for row in analyze.return_rows(r):
        rt.add_row(*row)
    console.print(rt)
