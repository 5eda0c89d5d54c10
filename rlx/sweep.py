"""`rlx sweep`: an experiment's grid as the fewest compiled programs, resumable, ending in statistics and plots.

Cells whose configs differ only in batched hyperparameters (rlx.config.HPARAMS, and the seed) form one group
and run as one compiled program, vmapped over cells x seeds and sharded over devices. A sweep directory:

    sweep.json                  the experiment, its cells (labels and settings) and the groups
    groups/g<i>/                one run directory per group (rlx.results.RunDir); rows carry "cell"
    results.csv, summary.json   per cell: final greedy return (mean, median, IQM, optimality gap, each with its
                                rliable stratified-bootstrap 95% CI, per seed); summary.json also holds the
                                across-env aggregates and the two-arm comparisons
    curves_<axis>.png, final_return.png (and episodes_to_solve.png for N-chain grids)
    performance_profile_<axis>.png, probability_of_improvement_<axis>.png for each axis with two values

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
from rlx import health
from rlx.errors import UserError
from rlx.experiment import Experiment
from rlx.results import (
    BOOTSTRAP_SEED,
    RunDir,
    aggregate,
    atomic_write,
    bootstrap_reps,
    dumps,
    improvement,
    performance_profiles,
    run_summary,
    score_matrix,
    summarize,
)
from rlx.terminal import with_ci

SWEEP = "sweep.json"


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


def prepare(exp: Experiment, sweep_dir: Path, seeds: int, extra: dict | None = None, writes: bool = True) -> dict:
    """Write sweep.json for a new sweep, or check that an existing one is this same sweep (then it resumes).
    writes=False: a process of a multi-process sweep other than the first (rlx.distributed) checks but writes
    nothing."""
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
        if old.get("report", []) != spec["report"] and writes:  # what to report is presentation, not identity
            old["report"] = spec["report"]
            atomic_write(sweep_dir / SWEEP, dumps(old, indent=2) + "\n")
        return old
    if writes:
        RunDir(sweep_dir, resume=False)  # checks that the directory is writable, before anything runs
        atomic_write(sweep_dir / SWEEP, dumps(spec, indent=2) + "\n")
    return spec


def group_dir(sweep_dir: Path, g: int) -> Path:
    """Run directory of group g."""
    return Path(sweep_dir) / "groups" / f"g{g}"


def group_done(sweep_dir: Path, g: int) -> bool:
    """True when group g finished (its summary is written last)."""
    return (group_dir(sweep_dir, g) / "summary.json").exists()


def run_group(sweep_dir, g: int, devices: int | None = None, on_chunk: Callable | None = None,
              processes: int = 1) -> list[dict]:
    """Train group g of a prepared sweep (resuming from its checkpoint if it has one); one summary per cell.
    With processes > 1 every task of the Slurm step calls it, and they run the group as one program.

    Module-level and picklable: rlx.cluster's launchers run it in a job.
    """
    from rlx import distributed, loop, runner

    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    path = group_dir(sweep_dir, g)
    if group_done(sweep_dir, g):
        return json.loads((path / "summary.json").read_text())["cells"]
    cfgs = [C.from_dict(spec["cells"][i]["config"]) for i in spec["groups"][g]]
    names = [Cell(spec["cells"][i]["labels"], spec["cells"][i]["overrides"], cfg).name()
             for i, cfg in zip(spec["groups"][g], cfgs, strict=True)]  # fmt: skip
    loop.enable_compile_cache()
    loop.use_deterministic_ops(cfgs[0].deterministic)  # a Slurm job's own process: before its first array
    distributed.initialize(processes)
    resume = (path / "config.json").exists()
    distributed.barrier(f"g{g} opened")  # every process decided before process 0 writes config.json
    run_dir = RunDir(path, resume=resume, writes=distributed.is_primary(processes))
    if not resume:
        run_dir.write_config({"configs": [C.to_dict(c) for c in cfgs], "seeds": spec["seeds"], "cells": spec["groups"][g]})
    cells = runner.train_cells(cfgs, spec["seeds"], run_dir, resume=resume, on_chunk=on_chunk, devices=devices,
                               cell_names=names)
    summaries = [run_summary(c) for c in cells]
    run_dir.write_summary({"cells": summaries})  # written last: it marks the group done
    return summaries


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
    """Per finished cell: labels, final greedy return statistics (over its healthy seeds), its seeds' health
    (rlx.health), episodes to solve, and its metric rows."""
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
            optimal = summaries[pos].get("optimal_return")  # known on the N-chain only
            # A group summarised before seeds had a health counts every seed as healthy.
            flags = summaries[pos].get("health") or health.block([health.OK] * len(final), None)
            ok = health.healthy(flags, len(final))
            res = {
                "cell": i,
                "group": g,
                "labels": cell["labels"],
                "env": cell["config"]["env"],
                "noise": cell["config"]["noise"],
                "steps": last,
                "optimal_return": optimal,
                "eval_return": summarize([final[s] for s in sorted(final)], optimal, ok),
                "health": flags,
                "rows": mine,
            }
            if "episodes_to_solve" in summaries[pos]:
                res["episodes_to_solve"] = summaries[pos]["episodes_to_solve"]
            by_seed = {s: sorted((r for r in mine if r["seed"] == s), key=lambda r: r["steps"]) for s in sorted(final)}
            # Only the statistics of greedy returns (STATS) have the env's optimum as a ceiling.
            res["stats"] = {n: summarize([run_stat(by_seed[s], n) for s in by_seed], optimal if n in STATS else None, ok)
                            for n in spec.get("report", [])}
            out.append(res)
    return out


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.1f}"


FRACTION = ".3g"  # report statistics such as dormant_0.025, and normalised scores, need more digits than returns


def _seeds_text(per_seed: list) -> str:
    return " ".join("nan" if v is None else f"{v:g}" for v in per_seed)


# results.csv: after each cell's mean and its CI (ci95_*), the other statistics of rlx.results.summarize.
_MORE = ("median", "optimality_gap", *(f"{n}_ci95_{e}" for n in ("iqm", "median", "optimality_gap") for e in ("low", "high")))


def _csv_stats(e: dict) -> list:
    """One summarize() dict as results.csv columns: mean, iqm, ci95_low/high (the mean's), _MORE, per_seed."""
    cis = [v for n in ("iqm", "median", "optimality_gap") for v in e["cis"][n]]
    return [e["mean"], e["iqm"], *e["ci95"], e["median"], e["optimality_gap"], *cis, _seeds_text(e["per_seed"])]


def _health_csv(h: dict) -> list:
    """results.csv's last columns: healthy_seeds (how many the statistics are over), then the seed ids that
    diverged and that went non-finite, space-separated."""
    return [len(h["per_seed"]) - health.excluded(h), " ".join(map(str, h["diverged"])), " ".join(map(str, h["nonfinite"]))]


def write_csv(path: Path, results: list[dict], axes: list[str], stats: list[str]) -> None:
    """results.csv: a row per finished cell; its final greedy return, episodes to solve (N-chain), report stats and
    the seeds' health."""
    chain = any("episodes_to_solve" in r for r in results)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*axes, "seeds", "steps", "mean", "iqm", "ci95_low", "ci95_high", *_MORE, "per_seed"]
                   + (["solved", "median_episodes_to_solve"] if chain else [])
                   + [f"{n}_{c}" for n in stats for c in ("mean", "ci95_low", "ci95_high", "per_seed")]
                   + ["healthy_seeds", "diverged", "nonfinite"])  # fmt: skip
        for r in results:
            e = r["eval_return"]
            row = [r["labels"][a] for a in axes] + [len(e["per_seed"]), r["steps"], *_csv_stats(e)]
            if chain:
                s = r.get("episodes_to_solve", {})
                row += [s.get("solved"), s.get("median")]
            for n in stats:
                st = r["stats"][n]
                row += [st["mean"], *st["ci95"], _seeds_text(st["per_seed"])]
            w.writerow(row + _health_csv(r["health"]))


def report(sweep_dir: Path) -> dict:
    """Write results.csv, summary.json and the figures of a sweep directory from what is on disk."""
    sweep_dir = Path(sweep_dir)
    spec = read_spec(sweep_dir)
    results = cell_results(sweep_dir)
    axes = spec.get("axes") or list(spec["cells"][0]["labels"])
    stats = spec.get("report", [])
    write_csv(sweep_dir / "results.csv", results, axes, stats)
    finished = {r["cell"] for r in results}
    summary = {
        "experiment": spec["experiment"],
        "seeds": spec["seeds"],
        "cells": [{k: v for k, v in r.items() if k != "rows"} for r in results],
        "unfinished": [c["labels"] for i, c in enumerate(spec["cells"]) if i not in finished],
        "bootstrap": {"reps": bootstrap_reps(), "seed": BOOTSTRAP_SEED},  # what every CI below was drawn with
        "aggregates": env_aggregates(results, axes),
        "comparisons": comparisons(results, axes),
    }
    atomic_write(sweep_dir / "summary.json", dumps(summary, indent=2) + "\n")
    if results:
        _figures(results, axes, stats, spec["experiment"], sweep_dir)
        _two_arm_figures(results, axes, summary["comparisons"], sweep_dir)
    return summary


def _figures(results: list[dict], axes: list[str], stats: list[str], title: str, sweep_dir: Path) -> None:
    """Learning curves along each axis, final returns, report statistics and the N-chain figure."""
    from rlx import plots

    for axis in axes:
        plots.sweep_curves(results, axis, axes, sweep_dir / f"curves_{_safe(axis)}.png")
    plots.final_returns(results, sweep_dir / "final_return.png", title=title)
    for n in stats:
        what = STATS[n][0] if n in STATS else f"final {n}"
        plots.final_returns(results, sweep_dir / f"{_safe(n)}.png", title=f"{title}: {what}",
                            value=lambda r, n=n: r["stats"][n], ylabel=f"{n} (mean, 95% CI)")
        if n not in STATS:
            for axis in axes:
                plots.sweep_curves(results, axis, axes, sweep_dir / f"curves_{_safe(axis)}_{_safe(n)}.png", key=n)
    _chain_figure(results, sweep_dir / "episodes_to_solve.png")


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
    """Rows of the terminal table: axis labels, seeds, their health, mean and IQM each with its 95% CI (over the healthy
    seeds, the count left out beside them), per seed (and episodes to solve), then each report statistic as mean
    [95% CI]."""
    out = []
    for c in summary["cells"]:
        e, h = c["eval_return"], c.get("health")
        row = [str(c["labels"][a]) for a in axes]
        row += [str(len(e["per_seed"])), health.status_text(h), with_ci(e, "mean") + health.note(h),
                with_ci(e, "iqm") + health.note(h)]
        row.append(" ".join("—" if v is None else f"{v:.0f}" for v in e["per_seed"]))
        if "episodes_to_solve" in c:
            s = c["episodes_to_solve"]
            row.append(f"{s['solved']}/{len(s['per_seed'])}, median {_fmt(s['median'])}")
        for n in stats:
            st = c["stats"][n]
            row.append(with_ci(st, "mean", FRACTION) + health.note(h))
        out.append(row)
    return out


def health_warnings(summary: dict, axes: list[str]) -> list[str]:
    """rlx.health.warning for each cell with a seed that diverged or went non-finite."""
    lines = [health.warning(c.get("health"), f"{setting_name({a: c['labels'][a] for a in axes})}: ")
             for c in summary["cells"]]  # fmt: skip
    return [w for w in lines if w]


def aggregate_rows(summary: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the across-env table: the setting, envs, seeds per env, the scale of the scores, then
    mean, median, IQM and optimality gap, each as value [95% CI]."""
    aggs = summary.get("aggregates", [])
    axes = list(aggs[0]["labels"]) if aggs else []
    cols = [*axes, "envs", "seeds", "scores", "mean", "median", "IQM", "optimality gap"]
    rows = [[str(g["labels"][a]) for a in axes] + [str(g["envs"]), str(g["seeds"]), "÷ optimal" if g["normalized"] else "raw"]
            + [with_ci(g, n, FRACTION) for n in ("mean", "median", "iqm", "optimality_gap")] for g in aggs]  # fmt: skip
    return cols, rows


def comparison_lines(summary: dict) -> list[str]:
    """`P(noise=param > noise=eps | lr=0.001) = 0.75 [0.25, 1.00]` per two-arm comparison."""
    out = []
    for c in summary.get("comparisons", []):
        given = f" | {setting_name(c['labels'])}" if c["labels"] else ""
        lo, hi = c["ci95"]
        out.append(f"P({c['axis']}={c['x']} > {c['axis']}={c['y']}{given}) = {c['p']:.2f} [{lo:.2f}, {hi:.2f}]")
    return out


# ---------------------------------------------------------------------------------------------
# Across envs and between two arms (rliable): the final greedy returns of cells that share the other settings


def final_scores(cell: dict) -> list[float]:
    """The cell's final greedy return per seed, NaN for a seed left out of the statistics (non-finite or unhealthy)."""
    values = cell["eval_return"]["per_seed"]
    ok = health.healthy(cell.get("health"), len(values))
    return [np.nan if v is None or not good else v for v, good in zip(values, ok, strict=True)]


def _settings(results: list[dict], keep: list[str]) -> list[list[dict]]:
    """The cells grouped by their labels on the axes `keep`, in grid order."""
    groups: dict[tuple, list[dict]] = {}
    for r in sorted(results, key=lambda r: r["cell"]):
        groups.setdefault(tuple(str(r["labels"][a]) for a in keep), []).append(r)
    return list(groups.values())


def env_axes(results: list[dict], axes: list[str]) -> list[str]:
    """Grid axes that choose the env: each of their labels goes with one env and each env with one label.
    None when the cells share one env."""
    envs = {r["env"] for r in results}

    def chooses_env(a: str) -> bool:
        labels = {str(r["labels"][a]) for r in results}
        return len(labels) == len(envs) == len({(str(r["labels"][a]), r["env"]) for r in results})

    return [a for a in axes if len(envs) > 1 and chooses_env(a)]


def env_aggregates(results: list[dict], axes: list[str]) -> list[dict]:
    """Final greedy return across envs per setting of the axes that do not choose the env (rlx.results.aggregate:
    stratified bootstrap over seeds within envs, on returns / each env's optimal return where every env has
    one); [] for a sweep of one env."""
    by_env = env_axes(results, axes)
    others = [a for a in axes if a not in by_env]
    out = []
    for cells in _settings(results, others) if by_env else []:
        if len(cells) < 2:  # its other envs have not finished yet
            continue
        agg = aggregate([final_scores(c) for c in cells], [c.get("optimal_return") for c in cells])
        if agg is not None:
            out.append({"labels": {a: cells[0]["labels"][a] for a in others}, **agg})
    return out


def two_arm_axes(results: list[dict], axes: list[str]) -> list[tuple[str, str, str]]:
    """(axis, first value, second value) for each axis with exactly two values, other than an env axis."""
    by_env = env_axes(results, axes)
    out = []
    for a in axes:
        values = list(dict.fromkeys(str(r["labels"][a]) for r in sorted(results, key=lambda r: r["cell"])))
        if a not in by_env and len(values) == 2:
            out.append((a, *values))
    return out


def _two_arms(results: list[dict], axes: list[str]):
    """Per two-valued axis and setting of the other non-env axes: {"axis", "x" (the second value), "y" (the first),
    "labels" (the setting), "x_cells", "y_cells" (one cell per env, in the same env order)}."""
    by_env = env_axes(results, axes)
    for axis, first, second in two_arm_axes(results, axes):
        others = [a for a in axes if a != axis and a not in by_env]
        for cells in _settings(results, others):
            y, x = ({c["env"]: c for c in cells if str(c["labels"][axis]) == v} for v in (first, second))
            if y and x.keys() == y.keys():  # both arms finished on the same envs
                yield {"axis": axis, "x": second, "y": first, "labels": {a: cells[0]["labels"][a] for a in others},
                       "x_cells": list(x.values()), "y_cells": [y[e] for e in x]}  # fmt: skip


def comparisons(results: list[dict], axes: list[str]) -> list[dict]:
    """P(improvement) of each two-valued axis's second value over its first (noise=param over noise=eps) per
    setting of the other axes, envs as rliable's tasks: {"axis", "x", "y", "labels", "p", "ci95"}."""
    out = []
    for arm in _two_arms(results, axes):
        p = improvement([final_scores(c) for c in arm["x_cells"]], [final_scores(c) for c in arm["y_cells"]])
        if p is not None:
            out.append({k: arm[k] for k in ("axis", "x", "y", "labels")} | p)
    return out


def _profile_panel(arm: dict) -> dict | None:
    """rliable's performance profiles of both arms of one setting, on 21 thresholds over their pooled scores (a
    profile only steps at a run's score, and a sweep has few runs; each threshold costs every bootstrap rep)."""
    scores = {}
    for v, cells in ((arm["y"], arm["y_cells"]), (arm["x"], arm["x_cells"])):
        m, normalized = score_matrix([final_scores(c) for c in cells], [c.get("optimal_return") for c in cells])
        if m is None:
            return None
        scores[f"{arm['axis']}={v}"] = m
    pooled = np.concatenate([m.ravel() for m in scores.values()])
    taus = np.linspace(pooled.min(), pooled.max(), 21)
    profiles, cis = performance_profiles(scores, taus)
    return {"title": setting_name(arm["labels"]), "profiles": profiles, "cis": cis, "taus": taus, "normalized": normalized}


def _two_arm_figures(results: list[dict], axes: list[str], comps: list[dict], sweep_dir: Path) -> None:
    """performance_profile_<axis>.png and probability_of_improvement_<axis>.png for each two-valued axis."""
    from rlx import plots

    panels: dict[str, list[dict]] = {}
    for arm in _two_arms(results, axes):
        panel = _profile_panel(arm)
        if panel is not None:
            panels.setdefault(arm["axis"], []).append(panel)
    for axis, ps in panels.items():
        plots.performance_profiles(ps, sweep_dir / f"performance_profile_{_safe(axis)}.png")
        mine = [c for c in comps if c["axis"] == axis]
        if mine:
            plots.probability_of_improvement(mine, sweep_dir / f"probability_of_improvement_{_safe(axis)}.png")


def setting_name(labels: dict) -> str:
    """`lr=0.001 act=relu`, or `all cells` for no labels."""
    return " ".join(f"{k}={v}" for k, v in labels.items()) or "all cells"


def describe(exp: Experiment, seeds: int, extra: dict | None = None) -> tuple[list[Cell], list[list[int]], list[str]]:
    """Cells, groups and batched axes of an experiment, for `rlx show`."""
    cells = expand(exp, extra)
    groups = plan(cells)
    return cells, groups, batched_axes(cells, groups)


def pending_groups(sweep_dir: Path, spec: dict) -> list[int]:
    """Groups that have not finished yet."""
    return [g for g in range(len(spec["groups"])) if not group_done(sweep_dir, g)]

