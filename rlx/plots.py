"""Matplotlib figures of RL runs and sweeps, written as PNG next to the numbers they show.

Other domains draw their own: rlx.sentiment.figures (sentiment neuron), rlx.path_figures (policy paths);
they share save_figure from here."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

# Figure without pyplot: no global figure registry to leak or close, and no backend switch that
# would disturb a notebook that imports rlx. savefig(".png") renders with Agg regardless of backend.
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from rlx.results import atomic_write

# The 25-75% band only means something with a few seeds; with 2 or 3 it is just interpolation.
_MIN_SEEDS_FOR_IQR = 4


def _finite(v) -> bool:
    # Rows straight from the runner may hold numpy scalars; rows read back from JSON hold Python ones.
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)


def save_figure(fig: Figure, path: Path) -> Path:
    """Write fig as a PNG at path (120 dpi), creating its folder; returns path. Rendered in memory and written
    atomically: a full disk leaves the previous figure, not half a PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())
    return path


def curve(rows: list[dict], key: str) -> dict | None:
    """Per-step statistics across seeds for one metric, or None when no row has a finite value for it.

    Returns steps, mean, lo/hi (min/max), q25/q75 and n_seeds; steps where only some seeds have a value
    use those seeds.
    """
    values: dict[tuple[int, float], float] = {}
    for r in rows:
        v, step = r.get(key), r.get("steps")
        if _finite(v) and _finite(step):
            # A repeated (seed, step) comes from a resumed run; the later row wins.
            values[(r.get("seed", 0), step)] = float(v)
    if not values:
        return None
    seeds = list(dict.fromkeys(s for s, _ in values))
    steps = sorted({t for _, t in values})
    m = np.full((len(steps), len(seeds)), np.nan)
    si = {s: i for i, s in enumerate(seeds)}
    ti = {t: i for i, t in enumerate(steps)}
    for (s, t), v in values.items():
        m[ti[t], si[s]] = v
    q25, q75 = np.nanpercentile(m, [25, 75], axis=1)
    return {
        "steps": np.asarray(steps, dtype=np.float64),
        "mean": np.nanmean(m, axis=1),
        "lo": np.nanmin(m, axis=1),
        "hi": np.nanmax(m, axis=1),
        "q25": q25,
        "q75": q75,
        "n_seeds": len(seeds),
    }


def learning_curves(
    rows: list[dict], path: Path, *, keys=("eval_return", "return_mean"), title: str = ""
) -> Path:
    """Plot each metric in `keys` against steps: mean over seeds with min-max (and 25-75%) bands; write a PNG."""
    path = Path(path)
    curves = [(k, c) for k in keys if (c := curve(rows, k)) is not None]
    ncols = max(1, len(curves))
    fig = Figure(figsize=(5.0 * ncols, 3.6), layout="constrained")
    if not curves:
        # Still write the file: a run that logged nothing should say so, not leave a missing plot.
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"no data for {', '.join(keys)}", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    for i, (key, c) in enumerate(curves):
        ax = fig.add_subplot(1, ncols, i + 1)
        x = c["steps"]
        ax.fill_between(x, c["lo"], c["hi"], color="C0", alpha=0.15, linewidth=0, label="min-max")
        if c["n_seeds"] >= _MIN_SEEDS_FOR_IQR:
            ax.fill_between(x, c["q25"], c["q75"], color="C0", alpha=0.3, linewidth=0, label="25-75%")
        n = c["n_seeds"]
        ax.plot(x, c["mean"], color="C0", linewidth=1.6, marker="o" if len(x) == 1 else None,
                label=f"mean over {n} seed{'s' if n != 1 else ''}")
        ax.set_xlabel("steps")
        ax.set_ylabel(key)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def episodes_to_solve(rows: list[dict], path: Path, *, cap: int) -> Path:
    """Median (and interquartile range) of episodes-to-solve versus chain length N, one line per noise.

    Unsolved seeds count as the cap, as in Plappert et al. Fig. 4; the y axis is capped there.
    """
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot(1, 1, 1)
    for noise in sorted({r["noise"] for r in rows}):
        cells = sorted((r for r in rows if r["noise"] == noise), key=lambda r: r["n"])
        ns = [r["n"] for r in cells]
        vals = [np.array([cap if e is None else e for e in r["per_seed"]], float) for r in cells]
        med = [np.median(v) for v in vals]
        ax.plot(ns, med, marker="o", label=noise)
        ax.fill_between(ns, [np.percentile(v, 25) for v in vals], [np.percentile(v, 75) for v in vals], alpha=0.2)
    ax.axhline(cap, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("chain length N")
    ax.set_ylabel("episodes to solve (median, IQR)")
    ax.set_ylim(0, cap * 1.05)
    ax.legend(title="noise")
    fig.tight_layout()
    return save_figure(fig, path)


def distance_trace(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Parameter noise: chunk means of the measured distance d and the target δ (mean over seeds), and σ."""
    if not any(_finite(r.get("dist")) for r in rows):
        return None
    fig = Figure(figsize=(9, 3.5))
    ax, ax_sigma = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for key, axis in (("dist", ax), ("delta", ax), ("sigma", ax_sigma)):
        c = curve(rows, key)
        if c is not None:
            axis.plot(c["steps"], c["mean"], marker="o", label={"dist": "d (measured)", "delta": "δ (target)"}.get(key, key))
    ax.set_xlabel("env steps")
    ax.set_ylabel("policy distance")
    ax.legend()
    ax_sigma.set_xlabel("env steps")
    ax_sigma.set_ylabel("σ (adaptive)")
    ax_sigma.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def sweep_curves(results: list[dict], axis: str, axes: list[str], path: Path, *, key: str = "eval_return") -> Path:
    """Learning curves of a sweep along one grid axis: a panel per setting of the other axes, a line per
    value of `axis` (mean over seeds, 25-75% band from 4 seeds)."""
    others = [a for a in axes if a != axis]
    panels: dict[tuple, list[dict]] = {}
    for r in results:
        panels.setdefault(tuple(str(r["labels"][a]) for a in others), []).append(r)
    n = len(panels)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.4 * nrows), layout="constrained")
    for p, (where, cells) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, p + 1)
        for j, r in enumerate(cells):
            c = curve(r["rows"], key)
            if c is None:
                continue
            color = f"C{j % 10}"
            ax.plot(c["steps"], c["mean"], color=color, marker="o" if len(c["steps"]) == 1 else None,
                    label=f"{axis}={r['labels'][axis]}")  # fmt: skip
            if c["n_seeds"] >= _MIN_SEEDS_FOR_IQR:
                ax.fill_between(c["steps"], c["q25"], c["q75"], color=color, alpha=0.2, linewidth=0)
        ax.set_title(" ".join(f"{a}={v}" for a, v in zip(others, where, strict=True)) or "all cells", fontsize="small")
        ax.set_xlabel("steps")
        ax.set_ylabel(key)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    return save_figure(fig, path)


def final_returns(results: list[dict], path: Path, *, title: str = "", value=None,
                  ylabel: str = "final greedy return (mean, 95% CI)") -> Path:
    """Final greedy return per cell (or value(cell), a rlx.results.summarize dict): mean with its 95% stratified-
    bootstrap CI, seeds as dots."""
    fig = Figure(figsize=(max(5.0, 0.6 * len(results) + 2), 4.0), layout="constrained")
    ax = fig.add_subplot()
    for x, r in enumerate(results):
        e = r["eval_return"] if value is None else value(r)
        seeds = [v for v in e["per_seed"] if v is not None]
        ax.scatter([x] * len(seeds), seeds, s=10, color="grey", alpha=0.6, zorder=1)
        if e["mean"] is not None:
            lo, hi = e["ci95"]
            ax.errorbar([x], [e["mean"]], yerr=[[e["mean"] - lo], [hi - e["mean"]]], fmt="o", color="C0", capsize=3)
    ax.set_xticks(range(len(results)))
    ax.set_xticklabels([" ".join(str(v) for v in r["labels"].values()) for r in results], rotation=45, ha="right",
                       fontsize="small")  # fmt: skip
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def performance_profiles(panels: list[dict], path: Path) -> Path:
    """rliable's performance profiles of a two-arm comparison: a panel per setting of the other axes ({"title",
    "profiles", "cis", "taus", "normalized"}), a line per arm with its 95% CI band; write a PNG."""
    # rliable.plot_utils imports pyplot; it draws here only on the axes given, so no pyplot figure or display.
    from rliable import plot_utils

    ncols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(5.0 * ncols, 3.6 * nrows), layout="constrained")
    for p, panel in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, p + 1)
        score = "return / optimal return" if panel["normalized"] else "final greedy return"
        plot_utils.plot_performance_profiles(panel["profiles"], panel["taus"], performance_profile_cis=panel["cis"],
                                             ax=ax, xlabel=f"{score} (τ)", ylabel="fraction of runs > τ",
                                             labelsize="medium", ticklabelsize="small", legend=True,
                                             legendsize="small")  # fmt: skip
        ax.set_title(panel["title"], fontsize="small")
    return save_figure(fig, path)


# rliable joins each pair's names with a separator and splits them again; labels never hold this one.
_PAIR = "\x1f"


def probability_of_improvement(comparisons: list[dict], path: Path) -> Path:
    """rliable's probability-of-improvement bars: per comparison ({"axis", "x", "y", "labels", "p", "ci95"} from
    rlx.sweep.comparisons) P(X > Y) with its 95% CI, X labelled left and Y right, a row per setting of the other
    axes; write a PNG."""
    from rliable import plot_utils

    probs, cis = {}, {}
    for c in comparisons:
        given = " ".join(f"{k}={v}" for k, v in c["labels"].items())
        x, y = (f"{c['axis']}={v}" + (f"\n{given}" if given else "") for v in (c["x"], c["y"]))
        probs[x + _PAIR + y] = c["p"]
        cis[x + _PAIR + y] = c["ci95"]
    fig = Figure(figsize=(7.0, 1.2 + 0.7 * len(probs)), layout="constrained")
    ax = fig.add_subplot()
    plot_utils.plot_probability_of_improvement(probs, cis, pair_separator=_PAIR, ax=ax, xticks=[0.0, 0.25, 0.5, 0.75, 1.0],
                                               xlabel="P(left > right)", left_ylabel="", right_ylabel="",
                                               labelsize="medium", ticklabelsize="small")  # fmt: skip
    ax.set_xlim(0.0, 1.0)
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")  # below 0.5, the right arm is the better one
    return save_figure(fig, path)


def run_figures(rows: list[dict], out_dir: Path, env: str, noise: str) -> None:
    """The figures of a one-cell run in out_dir: learning_curve.png and, with parameter noise, param_noise.png."""
    out_dir = Path(out_dir)
    learning_curves(rows, out_dir / "learning_curve.png", title=f"{env} {noise}")
    distance_trace(rows, out_dir / "param_noise.png", title=f"{env}: d vs δ (chunk means)")
