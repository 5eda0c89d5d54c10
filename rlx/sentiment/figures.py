"""Sentiment-neuron figures (Radford et al. 2017, "Learning to Generate Reviews and Discovering Sentiment"):
per-class unit histogram, the unit's value along review bytes (PNG + HTML), data efficiency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Figure without pyplot, as in rlx.plots: savefig(".png") renders with Agg regardless of backend.
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from rlx.plots import save_figure

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
    return save_figure(fig, path)


def _display_char(b: int) -> str:
    # One display character per byte keeps character i on byte i even inside multi-byte UTF-8 sequences.
    if b == 0x0A:
        return "↵"
    return chr(b) if 0x20 <= b <= 0x7E else "·"


def wrap_bytes(data: bytes, width: int) -> list[tuple[int, int]]:
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
            rows.extend((i, s, e) for s, e in wrap_bytes(data, width))
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
    return save_figure(fig, path)


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
    return save_figure(fig, path)
