"""Policy-path figures (Tang et al. 2024, "The Ladder in Chaos") for `rlx analyze path`; numbers from rlx.analyze."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Figure without pyplot, as in rlx.plots: savefig(".png") renders with Agg regardless of backend.
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from rlx.plots import save_figure


def _ecdf(values) -> tuple[np.ndarray, np.ndarray, int]:
    """(x, F(x), left out) over the finite positive values, F counting every value: zeros sit below the
    first point and infinities above the last, so a curve that ends below 1 shows they exist."""
    v = np.asarray(values, dtype=np.float64).ravel()
    below = int(np.sum(v <= 0))
    keep = np.sort(v[np.isfinite(v) & (v > 0)])
    return keep, (below + np.arange(1, keep.size + 1)) / max(v.size, 1), v.size - keep.size


def path_changes(layers: dict, path: Path, *, title: str = "", detour_cut: float = 2.0) -> Path:
    """CDFs per layer of each parameter's accumulated change Σ|Δθ|, final change |θ_T − θ_0| and their ratio
    (the detour), on log x axes. `layers` maps a name to {"accumulated", "final", "detour"} arrays."""
    path = Path(path)
    panels = (("accumulated", "accumulated change Σ_t |θ_t+1 − θ_t|"), ("final", "final change |θ_T − θ_0|"),
              ("detour", "detour ratio Σ|Δθ| / |θ_T − θ_0|"))
    fig = Figure(figsize=(15.0, 3.8), layout="constrained")
    for i, (key, xlabel) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        drawn = False
        for j, (name, d) in enumerate(layers.items()):
            x, y, left_out = _ecdf(d[key])
            if x.size == 0:
                continue
            label = name.rsplit("/", 1)[-1] + (f" ({left_out} not drawn: 0 or inf)" if left_out else "")
            ax.step(x, y, where="post", color=f"C{j % 10}", linewidth=1.4, label=label)
            drawn = True
        if key == "detour":
            ax.axvline(detour_cut, color="0.4", linewidth=0.9, linestyle="--", label=f"ratio {detour_cut:g}")
        if drawn:
            ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no positive finite values", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of parameters")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def path_coordinates(layers: dict, steps, path: Path, *, top: int = 3, bottom: int = 3, title: str = "") -> Path:
    """Coordinate paths u_{t,i}σ_i of each layer's top and bottom temporal-SVD directions against env steps:
    a row per layer. `layers` maps a name to {"coords": (n, r), "sv": (r,)}."""
    path = Path(path)
    steps = np.asarray(steps, dtype=np.float64)
    n_layers = max(1, len(layers))
    fig = Figure(figsize=(11.0, 2.6 * n_layers), layout="constrained")
    for row, (name, d) in enumerate(layers.items()):
        coords, sv = np.asarray(d["coords"]), np.asarray(d["sv"])
        r = coords.shape[1]
        first = list(range(min(top, r)))
        # With few directions the bottom ones would repeat the top ones; draw each direction once.
        last = [i for i in range(max(0, r - bottom), r) if i not in first]
        for col, (which, idx) in enumerate((("top", first), ("bottom", last))):
            ax = fig.add_subplot(n_layers, 2, 2 * row + col + 1)
            for i in idx:
                ax.plot(steps, coords[:, i], marker="o", markersize=2.5, linewidth=1.2,
                        label=f"direction {i + 1}, σ={sv[i]:.3g}")  # fmt: skip
            if not idx:
                ax.text(0.5, 0.5, f"only {r} directions", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{name.rsplit('/', 1)[-1]}: {which} {len(idx)} directions", fontsize="small")
            ax.set_xlabel("steps")
            ax.set_ylabel("u σ")
            ax.xaxis.set_major_formatter(EngFormatter())
            ax.grid(alpha=0.3)
            if idx:
                ax.legend(loc="best", fontsize="x-small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def rebuilt_returns(returns: dict, path: Path, *, title: str = "") -> Path:
    """Greedy return of θ_T rebuilt from each layer's top-k directions against k (log2 axis): mean over seeds
    with its 95% CI per cell, and the full θ_T's as a dashed line with its band. `returns` is rlx.analyze's
    {"ks", "cells": [{"cell", "full", "rebuilt": [{"k", "mean", "ci95"}]}]}."""
    path = Path(path)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    cells = returns["cells"]
    for j, c in enumerate(cells):
        color = f"C{j % 10}"
        pts = [(r["k"], r["mean"], *r["ci95"]) for r in c["rebuilt"] if r["mean"] is not None]
        suffix = f" (cell {c['cell']})" if len(cells) > 1 else ""
        if pts:
            k, m, lo, hi = (np.array(v, dtype=np.float64) for v in zip(*pts, strict=True))
            ax.errorbar(k, m, yerr=[m - lo, hi - m], color=color, marker="o", markersize=4, capsize=3,
                        label=f"top-k rebuild{suffix}")  # fmt: skip
        f = c["full"]
        if f["mean"] is not None:
            ax.axhline(f["mean"], color=color, linestyle="--", linewidth=1.0, label=f"full θ_T: {f['mean']:.1f}{suffix}")
            ax.axhspan(f["ci95"][0], f["ci95"][1], color=color, alpha=0.12, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(returns["ks"])
    ax.set_xticklabels([str(k) for k in returns["ks"]])
    ax.set_xlabel("k: top directions kept per layer")
    ax.set_ylabel("greedy return (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)
