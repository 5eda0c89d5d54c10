"""Matplotlib figures written as PNG next to the numbers they show."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

# Figure without pyplot: no global figure registry to leak or close, and no backend switch that
# would disturb a notebook that imports rlx. savefig(".png") renders with Agg regardless of backend.
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

# The 25-75% band only means something with a few seeds; with 2 or 3 it is just interpolation.
_MIN_SEEDS_FOR_IQR = 4


def _finite(v) -> bool:
    # Rows straight from the runner may hold numpy scalars; rows read back from JSON hold Python ones.
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) and math.isfinite(v)


def _curve(rows: list[dict], key: str) -> dict | None:
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
    curves = [(k, c) for k in keys if (c := _curve(rows, k)) is not None]
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def distance_trace(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Parameter noise: chunk means of the measured distance d and the target δ (mean over seeds), and σ."""
    if not any(_finite(r.get("dist")) for r in rows):
        return None
    fig = Figure(figsize=(9, 3.5))
    ax, ax_sigma = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for key, axis in (("dist", ax), ("delta", ax), ("sigma", ax_sigma)):
        curve = _curve(rows, key)
        if curve is not None:
            axis.plot(curve["steps"], curve["mean"], marker="o", label={"dist": "d (measured)", "delta": "δ (target)"}.get(key, key))
    ax.set_xlabel("env steps")
    ax.set_ylabel("policy distance")
    ax.legend()
    ax_sigma.set_xlabel("env steps")
    ax_sigma.set_ylabel("σ (adaptive)")
    ax_sigma.set_yscale("log")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


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
            c = _curve(r["rows"], key)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path


def final_returns(results: list[dict], path: Path, *, title: str = "", value=None,
                  ylabel: str = "final greedy return (mean, 95% CI)") -> Path:
    """Final greedy return per cell (or value(cell), a rlx.results.summarize dict): mean with its 95% bootstrap
    CI, seeds as dots."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path


# --- Sentiment neuron (Radford et al. 2017, "Learning to Generate Reviews and Discovering Sentiment") ---

# Red for negative, green for positive, as in the paper's Figures 4-5. White at zero rather than RdYlGn's
# yellow, so a unit that is near zero reads as "no opinion". The ends are light enough for black text
# (contrast 6:1): switching ink to white on dark cells flickered mid-word where the value crossed over.
_NEG_COLOR, _POS_COLOR = "#e8594a", "#2ca25f"
_NAN_COLOR = (0.8, 0.8, 0.8, 1.0)
# Histograms of ~25k reviews get ~80 bins from numpy's "auto" rule: too ragged for two overlaid classes.
_MAX_HIST_BINS = 60
# DejaVu Sans Mono's advance width (1233 of 2048 font units), in em.
_MONO_ADVANCE = 1233 / 2048


def _sentiment_cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("rlx_sentiment", [_NEG_COLOR, "#ffffff", _POS_COLOR])


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    return path


def unit_histogram(values, labels, path: Path, *, title: str = "", unit: int | None = None) -> Path:
    """Histogram of one unit's value (final cell state after a review) per class, as in the paper's Fig. 3.

    `labels` are 0 (negative) or 1 (positive); both classes share the bins so their overlap is comparable.
    Non-finite values are dropped (the counts in the legend are of what is drawn).
    """
    path = Path(path)
    v = np.asarray(values, dtype=np.float64).ravel()
    lab = np.asarray(labels).ravel()
    if v.shape != lab.shape:
        raise ValueError(f"values and labels differ in length: {v.size} vs {lab.size}")
    neg, pos = lab == 0, lab == 1
    if not np.all(neg | pos):
        raise ValueError(f"labels must be 0 (negative) or 1 (positive), got {sorted(set(lab[~(neg | pos)].tolist()))}")
    keep = np.isfinite(v)
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    xlabel = "unit value" if unit is None else f"unit {unit} value"
    if not keep.any():
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        # numpy widens a zero range to ±0.5 itself, so constant values give one bar instead of an error.
        edges = np.histogram_bin_edges(v[keep], bins="auto")
        if len(edges) - 1 > _MAX_HIST_BINS:
            edges = np.linspace(edges[0], edges[-1], _MAX_HIST_BINS + 1)
        for mask, name, color in ((neg, "negative", _NEG_COLOR), (pos, "positive", _POS_COLOR)):
            x = v[mask & keep]
            # An empty class still gets its legend entry: "n=0" is information, a missing entry is a puzzle.
            ax.hist(x, bins=edges, color=color, alpha=0.45, edgecolor=color, linewidth=0.8, histtype="stepfilled",
                    label=f"{name} (n={x.size})")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel("reviews")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _display_char(b: int) -> str:
    # One display character per byte keeps character i on byte i even inside multi-byte UTF-8 sequences.
    if b == 0x0A:
        return "↵"
    return chr(b) if 0x20 <= b <= 0x7E else "·"


def _wrap(data: bytes, width: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges of display lines: break after a newline, else at the last space that fits,
    else hard at `width`. Every byte lands in exactly one line, so colours stay on their bytes."""
    lines, s, n = [], 0, len(data)
    while s < n:
        end = min(s + width, n)
        nl = data.find(b"\n", s, end)
        if nl >= 0:
            end = nl + 1
        elif end < n:
            sp = data.rfind(b" ", s, end)
            # Only word-wrap when it keeps the line at least half full; a long URL gets cut instead.
            if sp >= s + width // 2:
                end = sp + 1
        lines.append((s, end))
        s = end
    return lines


def _check_texts(texts, values) -> list[tuple[bytes, np.ndarray]]:
    if len(texts) != len(values):
        raise ValueError(f"{len(texts)} texts but {len(values)} value arrays")
    out = []
    for i, (t, v) in enumerate(zip(texts, values, strict=True)):
        if isinstance(t, str):
            raise TypeError(f"texts[{i}] is str; pass its bytes (t.encode('utf-8')) so values align with bytes")
        t = bytes(t)
        v = np.asarray(v, dtype=np.float64)
        if v.ndim != 1 or v.size != len(t):
            raise ValueError(f"texts[{i}] has {len(t)} bytes but values[{i}] has shape {v.shape}")
        out.append((t, v))
    return out


def _unit_text_html(reviews: list[tuple[bytes, np.ndarray]], colors: list[np.ndarray], vmax: float, title: str) -> str:
    import html

    from matplotlib.colors import to_hex

    head = html.escape(title or "unit value along each review")
    parts = [
        "<!DOCTYPE html>",
        f'<html><head><meta charset="utf-8"><title>{head}</title><style>',
        "body{font-family:sans-serif;margin:1.5em;max-width:60em}"
        ".text{font-family:'DejaVu Sans Mono',monospace;font-size:14px;line-height:1.6;white-space:pre-wrap;"
        "word-break:break-all;margin-bottom:1.5em}.label{color:#777;font-size:12px}",
        f"</style></head><body><h3>{head}</h3>",
        f'<div class="label">background: unit value, red = negative, white = 0, green = positive; '
        f"full colour at |value| = {vmax:.3g}. Hover a character for its byte and value.</div><br>",
    ]
    for i, ((data, v), rgba) in enumerate(zip(reviews, colors, strict=True)):
        parts.append(f'<div class="label">review {i + 1}, {len(data)} bytes</div><div class="text">')
        for b, x, c in zip(data, v, rgba, strict=True):
            ch = html.escape(_display_char(b))
            parts.append(f'<span style="background:{to_hex(c)}" title="0x{b:02x} {x:+.4g}">{ch}</span>')
            if b == 0x0A:
                parts.append("\n")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def unit_text(texts, values, path: Path, *, title: str = "", width: int = 90) -> Path:
    """The unit's value along the bytes of a few reviews (the paper's Figs. 4-5): each character on a background
    coloured by the value after that byte, red negative, green positive, full colour at the max |value| over
    all texts. Writes a PNG and, next to it, an HTML version (`.html`, one span per byte); returns the PNG path.

    `texts` are bytes (a review's UTF-8), `values[i]` a 1-D array with one value per byte of `texts[i]`.
    Non-printable and non-ASCII bytes show as '·', newlines as '↵', so character i is always byte i.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PathCollection
    from matplotlib.colors import Normalize
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    path = Path(path)
    if width < 8:
        raise ValueError(f"width must be at least 8 characters, got {width}")
    reviews = _check_texts(texts, values)
    finite = [np.abs(v[np.isfinite(v)]) for _, v in reviews]
    vmax = max((float(a.max()) for a in finite if a.size), default=0.0)
    # All-zero (or no) values: any positive scale draws them white; dividing by 0 would draw them as NaN grey.
    vmax = vmax if vmax > 0 else 1.0
    cmap, norm = _sentiment_cmap(), Normalize(-vmax, vmax)
    colors = []
    for _, v in reviews:
        rgba = cmap(norm(np.where(np.isfinite(v), v, 0.0)))
        rgba[~np.isfinite(v)] = _NAN_COLOR
        colors.append(rgba)

    # Grid of character cells: each review's wrapped lines, then a blank row before the next review.
    rows: list[tuple[int, int, int]] = []  # (review, start, end); review -1 is a gap row
    first_row: list[int] = []
    for i, (data, _) in enumerate(reviews):
        if i:
            rows.append((-1, 0, 0))
        first_row.append(len(rows))
        if data:
            rows.extend((i, s, e) for s, e in _wrap(data, width))
        else:
            # An empty review still gets a row, so the numbering in the margin matches the list given.
            rows.append((i, 0, 0))
    n_rows = max(1, len(rows))

    # Sizes in inches, fixed rather than constrained layout: the cell grid must keep its aspect so that
    # one monospace glyph sits in each cell. The cell is a little wider than the 0.602 em advance, for air.
    fontsize, cell_w, cell_h = 8.5, 0.082, 0.17
    left, right, top, bottom = 0.45, 0.15, 0.45 if title else 0.15, 0.6
    grid_w, grid_h = width * cell_w, n_rows * cell_h
    fig_w, fig_h = left + grid_w + right, top + grid_h + bottom
    fig = Figure(figsize=(fig_w, fig_h))
    ax = fig.add_axes((left / fig_w, bottom / fig_h, grid_w / fig_w, grid_h / fig_h))
    ax.set_xlim(0, width)
    ax.set_ylim(n_rows, 0)
    ax.set_axis_off()
    mono = FontProperties(family="DejaVu Sans Mono", size=fontsize)

    if not any(len(d) for d, _ in reviews):
        ax.text(width / 2, n_rows / 2, "no text", ha="center", va="center", color="0.4")
    img = np.zeros((n_rows, width, 4))  # transparent where no byte: the figure's white shows through
    # Glyphs as one PathCollection: a path per character, offset to its cell's centre in data coordinates,
    # drawn at the font size in points. Per-line text drifts off the cells by up to a character over 90
    # columns (hinted advances); a Text per character is exact but ~1.4 ms each (2 s for 6 x 300 bytes).
    glyph_cache: dict[str, object] = {}
    paths, offsets = [], []
    for r, (i, s, e) in enumerate(rows):
        if i < 0:
            continue
        data = reviews[i][0]
        img[r, : e - s] = colors[i][s:e]
        if s == e and r == first_row[i]:
            ax.text(0.2, r + 0.72, "(empty)", fontproperties=mono, color="0.5", va="baseline")
        for k in range(s, e):
            ch = _display_char(data[k])
            if ch == " ":
                continue
            if ch not in glyph_cache:
                glyph = TextPath((0, 0), ch, prop=mono)
                # Centre the glyph's advance (not its ink) on the cell, as a monospace line would place it.
                glyph_cache[ch] = glyph.transformed(Affine2D().translate(-_MONO_ADVANCE * fontsize / 2, 0))
            paths.append(glyph_cache[ch])
            offsets.append((k - s + 0.5, r + 0.72))
    if paths:
        # Paths are in points; (1/72) + dpi_scale_trans makes them pixels at whatever dpi savefig uses.
        ax.add_collection(PathCollection(paths, offsets=offsets, offset_transform=ax.transData,
                                         transform=Affine2D().scale(1 / 72) + fig.dpi_scale_trans,
                                         facecolors="black", edgecolors="none", linewidths=0, zorder=3),
                          autolim=False)  # fmt: skip
    ax.imshow(img, interpolation="nearest", aspect="auto", extent=(0, width, n_rows, 0))
    for i, r in enumerate(first_row):
        ax.text(-0.6, r + 0.72, str(i + 1), ha="right", va="baseline", fontsize=fontsize, color="0.45")

    cax = fig.add_axes((left / fig_w, 0.22 / fig_h, min(grid_w, 3.0) / fig_w, 0.11 / fig_h))
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
    cb.set_ticks([-vmax, 0.0, vmax])
    cb.ax.tick_params(labelsize=7, length=2, pad=1)
    cax.set_title("unit value (red negative, green positive)", fontsize=7, loc="left", pad=2)
    if title:
        fig.suptitle(title, y=1 - 0.12 / fig_h, va="top", fontsize=10)

    path.with_suffix(".html").parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".html").write_text(_unit_text_html(reviews, colors, vmax, title), encoding="utf-8")
    return _save(fig, path)


def data_efficiency(curves: dict, path: Path, *, title: str = "", refs: dict[str, float] | None = None) -> Path:
    """Test accuracy against the number of labelled training examples (log x): per curve the mean with a shaded
    10th-90th percentile band (over resampled training subsets), plus optional dashed reference accuracies.

    `curves` maps a label to {"sizes", "mean", "p10", "p90"}; p10/p90 may be missing or None (no band).
    Sizes <= 0 cannot sit on a log axis and are left out.
    """
    path = Path(path)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    drawn, banded = 0, False
    for j, (label, c) in enumerate(curves.items()):
        sizes = np.asarray(c["sizes"], dtype=np.float64)
        mean = np.asarray(c["mean"], dtype=np.float64)
        band = [None if c.get(k) is None else np.asarray(c[k], dtype=np.float64) for k in ("p10", "p90")]
        for name, a in (("mean", mean), ("p10", band[0]), ("p90", band[1])):
            if a is not None and a.shape != sizes.shape:
                raise ValueError(f"curve {label!r}: {name} has shape {a.shape}, sizes {sizes.shape}")
        keep = np.isfinite(sizes) & (sizes > 0)
        order = np.argsort(sizes[keep], kind="stable")
        x = sizes[keep][order]
        if x.size == 0:
            continue
        color = f"C{j % 10}"
        if band[0] is not None and band[1] is not None:
            ax.fill_between(x, band[0][keep][order], band[1][keep][order], color=color, alpha=0.18, linewidth=0)
            banded = True
        ax.plot(x, mean[keep][order], color=color, marker="o", markersize=3.5, linewidth=1.6, label=str(label))
        drawn += 1
    for k, (label, acc) in enumerate((refs or {}).items()):
        ax.axhline(acc, color="0.35", linewidth=1.0, linestyle=("--", ":", "-.")[k % 3], label=f"{label}: {acc:.3g}")
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    if drawn or refs:
        handles, labels = ax.get_legend_handles_labels()
        if banded:
            # One legend entry explains every band, instead of doubling each curve's entry.
            from matplotlib.patches import Patch

            handles.append(Patch(color="0.5", alpha=0.3, linewidth=0))
            labels.append("shaded: 10th-90th percentile")
        ax.legend(handles, labels, loc="best", fontsize="small")
    if title:
        ax.set_title(title)
    return _save(fig, path)


# --- Policy paths (Tang et al. 2024, "The Ladder in Chaos"); numbers from rlx.analyze ---


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
    return _save(fig, path)


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
    return _save(fig, path)


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
    return _save(fig, path)
