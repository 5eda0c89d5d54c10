"""`rlx sweep`: an experiment's grid as the fewest compiled programs, resumable, ending in statistics and plots.

Cells whose configs differ only in batched hyperparameters (rlx.config.HPARAMS, and the seed) form one group
and run as one compiled program, vmapped over cells x seeds and sharded over devices. A sweep directory:

    sweep.json                  the experiment, its cells (labels and settings) and the groups
    groups/g<i>/                one run directory per group (rlx.results.RunDir); rows carry "cell"
    results.csv, summary.json   per cell: final greedy return (mean, IQM, 95% bootstrap CI, per seed)
    curves_<axis>.png, final_return.png (and episodes_to_solve.png for N-chain grids)

A sweep started again in the same directory skips finished groups and resumes unfinished ones from their
last checkpoint; `rlx report DIR` rebuilds the tables and figures from disk.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlx import config as C
from rlx.errors import UserError
from rlx.experiment import Experiment
from rlx.results import RunDir, atomic_write, dumps, run_summary, summarize

SWEEP = "sweep.json"
LAUNCHERS = ("local", "slurm", "submitit-local")


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its label per axis, the settings it adds, and the resolved config."""

    labels: dict
    overrides: dict
    cfg: C.Config

    def name(self) -> str:
        """Label such as `noise=param lr=0.001`."""
        return " ".join(f"{k}={v}" for k, v in self.labels.items())


def _axis_options(exp: Experiment, axis: str, values) -> list[tuple]:
    """(label, overrides) for each value of one grid axis."""
    if not isinstance(values, (list, tuple)) or len(values) == 0:
        raise UserError(f"grid axis '{axis}' of experiment '{exp.name}' is empty; give it a list of values.")
    options = []
    for j, v in enumerate(values):
        if isinstance(v, dict):  # settings that go together, e.g. a chain length and its budget
            # The entry under the axis name labels the cell; it is a setting too when it names a config key
            # ("env"), and only a label otherwise ("representation": "hadamard_tanh").
            over = {C.resolve_key(k): x for k, x in v.items() if k != axis or _is_key(k)}
            label = v.get(axis, f"#{j}")
        else:
            over, label = {C.resolve_key(axis): v}, v
        options.append((label, over))
    return options


def _is_key(name: str) -> bool:
    try:
        C.resolve_key(name)
    except UserError:
        return False
    return True


def expand(exp: Experiment, extra: dict | None = None) -> list[Cell]:
    """The cells of exp.grid (first axis slowest); `extra` settings (from --set) apply to every cell."""
    if not exp.grid:
        raise UserError(
            f"experiment '{exp.name}' has no grid to sweep; add grid={{...}} to it, or run it with "
            f"`rlx train --experiment {exp.name}`."
        )
    axes = [(axis, _axis_options(exp, axis, values)) for axis, values in exp.grid.items()]
    base = exp.config()
    cells = []
    for combo in itertools.product(*(opts for _, opts in axes)):
        labels = {axis: label for (axis, _), (label, _) in zip(axes, combo, strict=True)}
        over = {k: v for _, o in combo for k, v in o.items()}
        over.update(extra or {})
        try:
            cfg = C.apply_overrides(base, over)
        except UserError as e:
            where = " ".join(f"{k}={v}" for k, v in labels.items())
            raise UserError(f"grid cell {where}: {e}") from None
        cells.append(Cell(labels, over, cfg))
    return cells


def plan(cells: list[Cell]) -> list[list[int]]:
    """Group cell indices by the static part of their configs: one compiled program per group."""
    groups: dict = {}
    for i, c in enumerate(cells):
        groups.setdefault(C.static_part(c.cfg), []).append(i)
    return list(groups.values())


def batched_axes(cells: list[Cell], groups: list[list[int]]) -> list[str]:
    """Grid axes whose values vary inside some group (they are vmapped, not compiled separately)."""
    axes = list(cells[0].labels)
    return [a for a in axes if any(len({str(cells[i].labels[a]) for i in g}) > 1 for g in groups)]


# ---------------------------------------------------------------------------------------------
# The sweep directory


def _spec(exp: Experiment, cells: list[Cell], groups: list[list[int]], seeds: int) -> dict:
    return {
        "experiment": exp.name,
        "path": exp.path,
        "seeds": seeds,
        "axes": list(exp.grid),
        "report": list(exp.report),
        "cells": [{"labels": c.labels, "overrides": c.overrides, "config": C.to_dict(c.cfg)} for c in cells],
        "groups": groups,
    }


def read_spec(sweep_dir: Path) -> dict:
    """The sweep.json of a sweep directory; UserError if it is missing or corrupt."""
    p = Path(sweep_dir) / SWEEP
    try:
        spec = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{sweep_dir} is not a sweep directory (no {SWEEP}); give the directory `rlx sweep` wrote.") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"corrupt {p}: {e}; delete the directory or start the sweep with another --name.") from None
    if not isinstance(spec, dict) or not {"experiment", "cells", "groups", "seeds"} <= set(spec):
        raise UserError(f"corrupt {p}: missing experiment, cells, groups or seeds.")
    return spec


def prepare(exp: Experiment, sweep_dir: Path, seeds: int, extra: dict | None = None) -> dict:
    """Write sweep.json for a new sweep, or check that an existing one is this same sweep (then it resumes)."""
    cells = expand(exp, extra)
    spec = _spec(exp, cells, plan(cells), seeds)
    spec = json.loads(dumps(spec))  # the form it has on disk, so that the comparison below is like for like
    if (sweep_dir / SWEEP).exists():
        old = read_spec(sweep_dir)
        if old["experiment"] != spec["experiment"]:
            raise UserError(
                f"{sweep_dir} holds a sweep of experiment '{old['experiment']}', not '{exp.name}'; "
                "pass another --name or --out."
            )
        if old["cells"] != spec["cells"] or old["seeds"] != spec["seeds"]:
            raise UserError(
                f"{sweep_dir} holds a sweep of '{exp.name}' with other cells or seeds (the experiment or the flags "
                "changed); pass another --name, or the flags it was started with."
            )
        if old.get("report", []) != spec["report"]:  # what to report is presentation, not the sweep's identity
            old["report"] = spec["report"]
            atomic_write(sweep_dir / SWEEP, dumps(old, indent=2) + "\n")
        return old
    RunDir(sweep_dir, resume=False)  # checks that the directory is writable, before anything runs
    atomic_write(sweep_dir / SWEEP, dumps(spec, indent=2) + "\n")
    return spec


def group_dir(sweep_dir: Path, g: int) -> Path:
    """Run directory of group g."""
    return Path(sweep_dir) / "groups" / f"g{g}"


def group_done(sweep_dir: Path, g: int) -> bool:
    """True when group g finished (its summary is written last)."""
    return (group_dir(sweep_dir, g) / "summary.json").exists()


def run_group(sweep_dir, g: int, devices: int | None = None, on_chunk: Callable | None = None) -> list[dict]:
    """Train group g of a prepared sweep (resuming from its checkpoint if it has one); one summary per cell.

    Module-level and picklable: the slurm launcher runs it in a job.
    """
    from rlx import loop, runner

    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    path = group_dir(sweep_dir, g)
    if group_done(sweep_dir, g):
        return json.loads((path / "summary.json").read_text())["cells"]
    cfgs = [C.from_dict(spec["cells"][i]["config"]) for i in spec["groups"][g]]
    names = [Cell(spec["cells"][i]["labels"], spec["cells"][i]["overrides"], cfg).name()
             for i, cfg in zip(spec["groups"][g], cfgs, strict=True)]  # fmt: skip
    resume = (path / "config.json").exists()
    run_dir = RunDir(path, resume=resume)
    if not resume:
        run_dir.write_config({"configs": [C.to_dict(c) for c in cfgs], "seeds": spec["seeds"], "cells": spec["groups"][g]})
    loop.enable_compile_cache()
    cells = runner.train_cells(cfgs, spec["seeds"], run_dir, resume=resume, on_chunk=on_chunk, devices=devices,
                               cell_names=names)
    summaries = [run_summary(c) for c in cells]
    run_dir.write_summary({"cells": summaries})  # written last: it marks the group done
    return summaries


def launch(sweep_dir: Path, pending: list[int], launcher: str, devices: int | None) -> None:
    """Run pending groups as submitit jobs (one array task per group) and wait for them."""
    try:
        import submitit
    except ImportError:
        raise UserError(f"--launcher {launcher} needs submitit: pip install 'rlx[slurm]'.") from None
    folder = Path(sweep_dir) / "submitit"
    if launcher == "slurm":
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    else:
        executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(timeout_min=24 * 60)
    jobs = executor.map_array(run_group, [str(sweep_dir)] * len(pending), pending, [devices] * len(pending))
    for job in jobs:
        job.result()


# ---------------------------------------------------------------------------------------------
# Results: per-cell statistics, results.csv, summary.json, figures


# Statistics over a run's evaluations; any other report name is a metric's value in the run's last chunk.
STATS = {
    "score": ("best greedy return over the run", lambda vals: float(np.max(vals))),
    "auc": ("mean greedy return over the run", lambda vals: float(np.mean(vals))),
}


def run_stat(rows: list[dict], name: str) -> float:
    """One seed's statistic from its metric rows (sorted by steps): STATS over eval_return, else the final
    value of the metric `name` (NaN if the run never recorded it)."""
    if name in STATS:
        return STATS[name][1]([r["eval_return"] for r in rows])
    v = rows[-1].get(name)
    return float("nan") if v is None else float(v)


def cell_results(sweep_dir: Path) -> list[dict]:
    """Per finished cell: labels, final greedy return statistics, episodes to solve, and its metric rows."""
    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    out = []
    for g, members in enumerate(spec["groups"]):
        if not group_done(sweep_dir, g):
            continue
        rows = RunDir(group_dir(sweep_dir, g), resume=True).read_metrics()
        summaries = json.loads((group_dir(sweep_dir, g) / "summary.json").read_text())["cells"]
        for pos, i in enumerate(members):
            mine = [r for r in rows if r.get("cell", 0) == pos]
            last = max(r["steps"] for r in mine)
            final = {r["seed"]: r["eval_return"] for r in mine if r["steps"] == last}
            cell = spec["cells"][i]
            res = {
                "cell": i,
                "group": g,
                "labels": cell["labels"],
                "env": cell["config"]["env"],
                "noise": cell["config"]["noise"],
                "steps": last,
                "eval_return": summarize([final[s] for s in sorted(final)]),
                "rows": mine,
            }
            if "episodes_to_solve" in summaries[pos]:
                res["episodes_to_solve"] = summaries[pos]["episodes_to_solve"]
            by_seed = {s: sorted((r for r in mine if r["seed"] == s), key=lambda r: r["steps"]) for s in sorted(final)}
            res["stats"] = {n: summarize([run_stat(by_seed[s], n) for s in by_seed]) for n in spec.get("report", [])}
            out.append(res)
    return out


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.1f}"


def _fmt2(v) -> str:  # fractions such as dormant_0.025 need more digits than returns
    return "—" if v is None else f"{v:.3g}"


def report(sweep_dir: Path) -> dict:
    """Write results.csv, summary.json and the figures of a sweep directory from what is on disk."""
    from rlx import plots

    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    results = cell_results(sweep_dir)
    axes = spec.get("axes") or list(spec["cells"][0]["labels"])
    stats = spec.get("report", [])
    with open(sweep_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        chain = any("episodes_to_solve" in r for r in results)
        w.writerow([*axes, "seeds", "steps", "mean", "iqm", "ci95_low", "ci95_high", "per_seed"]
                   + (["solved", "median_episodes_to_solve"] if chain else [])
                   + [f"{n}_{c}" for n in stats for c in ("mean", "ci95_low", "ci95_high", "per_seed")])  # fmt: skip
        for r in results:
            e = r["eval_return"]
            row = [r["labels"][a] for a in axes] + [len(e["per_seed"]), r["steps"], e["mean"], e["iqm"], *e["ci95"]]
            row.append(" ".join("nan" if v is None else f"{v:g}" for v in e["per_seed"]))
            if chain:
                s = r.get("episodes_to_solve", {})
                row += [s.get("solved"), s.get("median")]
            for n in stats:
                st = r["stats"][n]
                row += [st["mean"], *st["ci95"], " ".join("nan" if v is None else f"{v:g}" for v in st["per_seed"])]
            w.writerow(row)
    finished = {r["cell"] for r in results}
    summary = {
        "experiment": spec["experiment"],
        "seeds": spec["seeds"],
        "cells": [{k: v for k, v in r.items() if k != "rows"} for r in results],
        "unfinished": [c["labels"] for i, c in enumerate(spec["cells"]) if i not in finished],
    }
    atomic_write(sweep_dir / "summary.json", dumps(summary, indent=2) + "\n")
    if results:
        for axis in axes:
            plots.sweep_curves(results, axis, axes, sweep_dir / f"curves_{_safe(axis)}.png")
        plots.final_returns(results, sweep_dir / "final_return.png", title=spec["experiment"])
        for n in stats:
            what = STATS[n][0] if n in STATS else f"final {n}"
            plots.final_returns(results, sweep_dir / f"{_safe(n)}.png", title=f"{spec['experiment']}: {what}",
                                value=lambda r, n=n: r["stats"][n], ylabel=f"{n} (mean, 95% CI)")
            if n not in STATS:
                for axis in axes:
                    plots.sweep_curves(results, axis, axes, sweep_dir / f"curves_{_safe(axis)}_{_safe(n)}.png", key=n)
        _chain_figure(results, sweep_dir / "episodes_to_solve.png")
    return summary


def _chain_figure(results: list[dict], path: Path) -> None:
    """Episodes to solve versus chain length N (Plappert et al. Fig. 4) for the N-chain cells, if any."""
    from rlx import plots
    from rlx.envs import chain

    rows = [{"n": chain.length(r["env"]), "steps": r["steps"], "noise": r["noise"], **r["episodes_to_solve"]}
            for r in results if "episodes_to_solve" in r and chain.length(r["env"])]  # fmt: skip
    if rows:
        cap = max(r["steps"] // chain.episode_length(r["n"]) for r in rows)  # episodes in the longest budget
        plots.episodes_to_solve(rows, path, cap=cap)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def table_rows(summary: dict, axes: list[str], stats: list[str] = ()) -> list[list[str]]:
    """Rows of the terminal table: axis labels, seeds, mean, IQM, CI, per seed (and episodes to solve), then
    each report statistic as mean [95% CI]."""
    out = []
    for c in summary["cells"]:
        e = c["eval_return"]
        row = [str(c["labels"][a]) for a in axes]
        row += [str(len(e["per_seed"])), _fmt(e["mean"]), _fmt(e["iqm"]), f"[{_fmt(e['ci95'][0])}, {_fmt(e['ci95'][1])}]"]
        row.append(" ".join("—" if v is None else f"{v:.0f}" for v in e["per_seed"]))
        if "episodes_to_solve" in c:
            s = c["episodes_to_solve"]
            row.append(f"{s['solved']}/{len(s['per_seed'])}, median {_fmt(s['median'])}")
        for n in stats:
            st = c["stats"][n]
            row.append(f"{_fmt2(st['mean'])} [{_fmt2(st['ci95'][0])}, {_fmt2(st['ci95'][1])}]")
        out.append(row)
    return out


def describe(exp: Experiment, seeds: int, extra: dict | None = None) -> tuple[list[Cell], list[list[int]], list[str]]:
    """Cells, groups and batched axes of an experiment, for `rlx show`."""
    cells = expand(exp, extra)
    groups = plan(cells)
    return cells, groups, batched_axes(cells, groups)


def pending_groups(sweep_dir: Path, spec: dict) -> list[int]:
    """Groups that have not finished yet."""
    return [g for g in range(len(spec["groups"])) if not group_done(sweep_dir, g)]

