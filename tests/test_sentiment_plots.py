"""Sentiment-neuron figures: per-class unit histogram, unit value along review bytes (PNG + HTML), data efficiency."""

import html
import re

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from rlx.sentiment.figures import data_efficiency, unit_histogram, unit_text, wrap_bytes

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SPAN = re.compile(r'<span style="background:(#[0-9a-f]{6})[^"]*"[^>]*>(.*?)</span>', re.S)


def _check_png(path, min_size=(150, 300)):
    """A real, non-blank PNG of at least min_size (height, width) pixels; returns the image array."""
    data = path.read_bytes()
    assert data[:8] == _PNG_SIGNATURE
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert img.shape[0] >= min_size[0] and img.shape[1] >= min_size[1]
    assert img[..., :3].std() > 0.01, "image is a single colour"
    return img


def _spans(html_path):
    """(background rgb, displayed character) for every span in the HTML, in order."""
    return [(to_rgb(c), html.unescape(ch)) for c, ch in _SPAN.findall(html_path.read_text(encoding="utf-8"))]


# ------------------------------------------------------------------------------------ unit_histogram


def test_unit_histogram_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    values = np.where(labels == 1, rng.normal(0.4, 0.2, 2000), rng.normal(-0.4, 0.2, 2000))
    out = unit_histogram(values, labels, tmp_path / "sub" / "hist.png", title="IMDB test", unit=2388)
    assert out == tmp_path / "sub" / "hist.png"
    _check_png(out)


@pytest.mark.parametrize(
    "values, labels",
    [
        (np.full(50, 0.3), np.r_[np.zeros(25), np.ones(25)]),  # constant: zero range
        (np.linspace(-1, 1, 30), np.ones(30, int)),  # one class empty
        (np.linspace(-1, 1, 30), np.zeros(30, bool)),  # bool labels, the other class empty
        (np.array([np.nan, np.inf, 0.5]), np.array([0, 1, 1])),  # non-finite values dropped
        (np.array([np.nan, np.nan]), np.array([0, 1])),  # nothing finite left
        (np.array([]), np.array([], int)),  # no reviews at all
    ],
)
def test_unit_histogram_degenerate_inputs_still_write_a_png(tmp_path, values, labels):
    path = unit_histogram(values, labels, tmp_path / "h.png")
    assert path.read_bytes()[:8] == _PNG_SIGNATURE
    assert imread(path).shape[0] > 100


def test_unit_histogram_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="length"):
        unit_histogram(np.zeros(3), np.zeros(4, int), tmp_path / "h.png")
    with pytest.raises(ValueError, match="0 .negative. or 1"):
        unit_histogram(np.zeros(3), np.array([0, 1, 2]), tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()


# ------------------------------------------------------------------------------------ unit_text


def test_wrap_covers_every_byte_once_within_width():
    data = b"short words here and there " * 8 + b"x" * 50 + b"\nnext" + b"y" * 200
    lines = wrap_bytes(data, 30)
    assert lines[0][0] == 0 and lines[-1][1] == len(data)
    # Contiguous: no byte dropped or repeated.
    assert all(a[1] == b[0] for a, b in zip(lines[:-1], lines[1:], strict=True))
    assert all(0 < e - s <= 30 for s, e in lines)
    # Word wrap breaks after a space; a newline ends its line.
    assert data[lines[0][1] - 1 : lines[0][1]] == b" "
    nl = data.index(b"\n")
    assert any(e == nl + 1 for _, e in lines)


def test_unit_text_png_and_html_one_span_per_byte(tmp_path):
    texts = [b"Great movie, loved it.", "Café naïve — awful\nsecond line".encode(), b"ok"]
    values = [np.linspace(-1, 1, len(t)) for t in texts]
    out = unit_text(texts, values, tmp_path / "t" / "text.png", title="unit 2388")
    assert out == tmp_path / "t" / "text.png"
    _check_png(out, min_size=(100, 500))
    spans = _spans(out.with_suffix(".html"))
    assert len(spans) == sum(len(t) for t in texts)
    shown = "".join(ch for _, ch in spans)
    # Character i is byte i: each non-ASCII byte of é, ï and the em dash is one '·', the newline one '↵'.
    assert shown.startswith("Great movie, loved it.Caf·· na··ve ··· awful↵second lineok")
    assert len(shown) == sum(len(t) for t in texts)


def test_unit_text_html_escapes_markup(tmp_path):
    text = b'a<b>&c"d <br />'
    out = unit_text([text], [np.zeros(len(text))], tmp_path / "e.png")
    doc = out.with_suffix(".html").read_text(encoding="utf-8")
    assert "&lt;" in doc and "&amp;" in doc
    assert "<b>" not in doc and "<br />" not in doc and ">&c" not in doc
    assert [ch for _, ch in _spans(out.with_suffix(".html"))] == list(text.decode())


def test_unit_text_colours_follow_sign_and_scale(tmp_path):
    out = unit_text([b"abc"], [np.array([-1.0, 0.0, 1.0])], tmp_path / "c.png")
    (neg, _), (zero, _), (pos, _) = _spans(out.with_suffix(".html"))
    assert neg[0] > neg[1] + 0.3  # red
    assert pos[1] > pos[0] + 0.3  # green
    assert min(zero) > 0.95  # white at zero
    # Full colour is at the max |value| over all texts: -1 is paler next to a 10 in another review.
    out = unit_text([b"a", b"b"], [np.array([-1.0]), np.array([10.0])], tmp_path / "s.png")
    (pale, _), (strong, _) = _spans(out.with_suffix(".html"))
    assert pale[0] - pale[1] < neg[0] - neg[1]
    assert strong[1] - strong[0] > 0.3


def test_unit_text_png_grows_with_text(tmp_path):
    short = unit_text([b"x" * 40], [np.zeros(40)], tmp_path / "a.png")
    long = unit_text([b"x" * 400], [np.zeros(400)], tmp_path / "b.png")
    assert imread(long).shape[0] > imread(short).shape[0]  # wrapped onto more lines
    assert imread(long).shape[1] == imread(short).shape[1]  # fixed line width


@pytest.mark.parametrize(
    "texts, values",
    [
        ([b"constant"], [np.zeros(8)]),  # all zero: no scale to divide by
        ([b"same"], [np.full(4, 0.7)]),
        ([b""], [np.array([])]),  # empty review
        ([b"", b"hi"], [np.array([]), np.array([0.1, -0.2])]),
        ([], []),  # no reviews
        ([b"nan!"], [np.array([np.nan, 1.0, -np.inf, 0.0])]),
    ],
)
def test_unit_text_degenerate_inputs(tmp_path, texts, values):
    out = unit_text(texts, values, tmp_path / "d.png")
    assert out.read_bytes()[:8] == _PNG_SIGNATURE
    assert imread(out).shape[0] > 50
    assert len(_spans(out.with_suffix(".html"))) == sum(len(t) for t in texts)


def test_unit_text_non_finite_value_is_grey(tmp_path):
    out = unit_text([b"ab"], [np.array([np.nan, 0.5])], tmp_path / "n.png")
    (grey, _), _ = _spans(out.with_suffix(".html"))
    assert grey == pytest.approx((0.8, 0.8, 0.8), abs=0.01)


def test_unit_text_rejects_mismatched_inputs(tmp_path):
    p = tmp_path / "bad.png"
    with pytest.raises(ValueError, match="2 texts but 1"):
        unit_text([b"ab", b"cd"], [np.zeros(2)], p)
    with pytest.raises(ValueError, match="3 bytes"):
        unit_text([b"abc"], [np.zeros(2)], p)
    with pytest.raises(ValueError, match="shape"):
        unit_text([b"ab"], [np.zeros((2, 1))], p)
    # "é" is 2 bytes: values counted per character would silently misalign, so str is refused.
    with pytest.raises(TypeError, match="bytes"):
        unit_text(["é"], [np.zeros(1)], p)
    assert not p.exists() and not p.with_suffix(".html").exists()


# ------------------------------------------------------------------------------------ data_efficiency


def _curve(top, n=6):
    sizes = [10 * 4**i for i in range(n)]
    mean = np.linspace(0.55, top, n)
    return {"sizes": sizes, "mean": mean.tolist(), "p10": (mean - 0.05).tolist(), "p90": (mean + 0.03).tolist()}


def test_data_efficiency_writes_png(tmp_path):
    curves = {"full probe": _curve(0.9), "sentiment unit": _curve(0.85), "bag of bytes": _curve(0.8)}
    curves["no band"] = {"sizes": [20, 200, 2000], "mean": [0.6, 0.7, 0.75]}
    out = data_efficiency(curves, tmp_path / "e" / "eff.png", title="IMDB",
                          refs={"paper, 4096 units (SST-2)": 0.918, "chance": 0.5})  # fmt: skip
    assert out == tmp_path / "e" / "eff.png"
    _check_png(out)


@pytest.mark.parametrize(
    "curves, refs",
    [
        ({}, None),  # nothing to draw
        ({}, {"paper": 0.918}),  # only a reference line
        ({"one point": {"sizes": [100], "mean": [0.7], "p10": [0.6], "p90": [0.8]}}, None),
        ({"zero size": {"sizes": [0, 10, 100], "mean": [0.5, 0.6, 0.7], "p10": None, "p90": None}}, None),
        ({"only zero": {"sizes": [0], "mean": [0.5]}}, None),  # nothing left on a log axis
        ({"unsorted": {"sizes": [1000, 10, 100], "mean": [0.9, np.nan, 0.7]}}, None),
    ],
)
def test_data_efficiency_degenerate_inputs(tmp_path, curves, refs):
    out = data_efficiency(curves, tmp_path / "d.png", refs=refs)
    assert out.read_bytes()[:8] == _PNG_SIGNATURE
    assert imread(out).shape[0] > 100


def test_data_efficiency_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="p90"):
        data_efficiency({"x": {"sizes": [1, 2, 3], "mean": [0.5, 0.6, 0.7], "p10": [0.4] * 3, "p90": [0.8]}},
                        tmp_path / "x.png")  # fmt: skip
