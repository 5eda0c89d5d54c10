"""The sentiment probe's L1 logistic regression against liblinear, and its single-unit and data-efficiency tools."""

import json

import numpy as np
import pytest

from rlx.sentiment.probe import (
    DEFAULT_CS,
    _accuracy,
    bag_of_bytes,
    data_efficiency,
    fit_l1_logreg,
    l1_logreg_objective,
    probe,
    single_unit,
    stratified_subsample,
)

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402

D = 64
INFORMATIVE = {3: 1.5, 17: -1.0, 30: 0.7, 41: 0.4, 55: -0.25}


def _liblinear(C, **kw):
    """sklearn's L1 liblinear logistic regression; sklearn 1.8 deprecated penalty= in favour of l1_ratio=."""
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    l1 = {"l1_ratio": 1.0} if (major, minor) >= (1, 8) else {"penalty": "l1"}
    return LogisticRegression(solver="liblinear", C=C, **l1, **kw)


def _split(seed, n=600, signal=1.0, bias=0.2):
    # Columns get their own scale and offset, as raw LM cell states do; the rng for those is fixed across splits.
    rng = np.random.default_rng(1234)
    scale, offset = rng.uniform(0.5, 2.0, D), rng.normal(0.0, 1.0, D)
    w = np.zeros(D)
    w[list(INFORMATIVE)] = list(INFORMATIVE.values())
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(signal * X @ w + bias)))).astype(np.int64)
    return (X * scale + offset).astype(np.float32), y


TRAIN, DEV, TEST = _split(0), _split(1), _split(2)


@pytest.fixture(scope="module")
def grid_fit():
    return fit_l1_logreg(*TRAIN, DEFAULT_CS)


def test_agrees_with_default_liblinear(grid_fit):
    # The paper's exact call; liblinear also penalises the intercept, which matters only when C is small.
    W, b = grid_fit
    acc = _accuracy(*TEST, W, b)
    for C in (2.0**-3, 2.0**-2, 2.0**0):
        i = int(np.flatnonzero(DEFAULT_CS == C)[0])
        sk = _liblinear(C).fit(*TRAIN)
        assert abs(acc[i] - sk.score(*TEST)) <= 0.01, C
        assert np.argmax(np.abs(W[i])) == np.argmax(np.abs(sk.coef_[0])) == 3
        nz, sk_nz = np.sum(W[i] != 0), np.sum(sk.coef_ != 0)
        assert abs(nz - sk_nz) <= max(3, 0.2 * sk_nz), (C, nz, sk_nz)


def test_matches_liblinear_with_a_free_intercept_over_the_grid(grid_fit):
    # A large intercept_scaling makes liblinear's bias penalty negligible: then it solves our problem.
    W, b = grid_fit
    acc = _accuracy(*TEST, W, b)
    for i, C in enumerate(DEFAULT_CS):
        sk = _liblinear(C, intercept_scaling=100.0, tol=1e-8, max_iter=10_000).fit(*TRAIN)
        assert abs(acc[i] - sk.score(*TEST)) <= 0.005, C
        assert abs(np.sum(W[i] != 0) - np.sum(sk.coef_ != 0)) <= 1, C
        if np.any(W[i]):
            assert np.argmax(np.abs(W[i])) == np.argmax(np.abs(sk.coef_[0])), C
        np.testing.assert_allclose(W[i], sk.coef_[0], atol=0.02)
        # Our optimum is never worse than liblinear's on the shared objective: the solver has converged.
        ours = l1_logreg_objective(*TRAIN, W[i], b[i], C)
        theirs = l1_logreg_objective(*TRAIN, sk.coef_[0], sk.intercept_[0], C)
        assert ours <= theirs + 1e-6 * abs(theirs) + 1e-6, (C, ours, theirs)


def test_probe_picks_what_a_sklearn_grid_loop_picks():
    res = probe(TRAIN, DEV, TEST)
    dev = [_liblinear(C).fit(*TRAIN).score(*DEV) for C in DEFAULT_CS]
    best = int(np.argmax(dev))  # first maximum = smaller C on ties, as probe does
    sk = _liblinear(DEFAULT_CS[best]).fit(*TRAIN)
    assert res["C"] == DEFAULT_CS[best]
    assert abs(res["accuracy"] - sk.score(*TEST)) <= 0.01
    assert abs(res["dev_accuracy"] - dev[best]) <= 0.01
    assert [r["C"] for r in res["per_C"]] == DEFAULT_CS.tolist()
    assert res["per_C"][best]["dev_accuracy"] == res["dev_accuracy"]
    assert res["nonzero"] == int(np.sum(res["coef"] != 0)) == res["per_C"][best]["nonzero"]
    assert res["coef"].shape == (D,)
    assert res["unit"]["index"] == 3 and res["unit"]["sign"] == 1
    assert 0.6 < res["unit"]["accuracy"] < res["accuracy"] + 0.05
    json.dumps({k: v for k, v in res.items() if k != "coef"})  # everything else is plain Python


def test_tiny_C_and_weak_signal_gives_no_weights_and_the_majority_rate():
    train, test = _split(0, signal=0.05, bias=0.8), _split(2, signal=0.05, bias=0.8)
    # Both Cs give all-zero weights, so dev accuracy ties: the smaller C must win, whatever the order given.
    res = probe(train, train, test, Cs=[2.0**-8, 2.0**-9])
    majority = int(train[1].mean() > 0.5)
    assert [r["nonzero"] for r in res["per_C"]] == [0, 0]
    assert res["C"] == 2.0**-9
    assert res["nonzero"] == 0 and not np.any(res["coef"])
    assert res["accuracy"] == pytest.approx(np.mean(test[1] == majority))
    assert majority == 1 and res["accuracy"] > 0.6


def test_vmapped_grid_equals_each_C_alone(grid_fit):
    W, b = grid_fit
    for i in (1, 4, 8):
        w1, b1 = fit_l1_logreg(*TRAIN, [DEFAULT_CS[i]])
        np.testing.assert_allclose(w1[0], W[i], atol=1e-4, rtol=1e-3)
        assert b1[0] == pytest.approx(b[i], abs=1e-4)


def test_feature_scale_only_rescales_the_answer():
    # ||w||_1 + C Σ loss on a·X is (1/a)(||a w||_1 + aC Σ loss): fitting a·X at C/a gives W/a, for any a.
    X, y = TRAIN
    W, b = fit_l1_logreg(X, y, [2.0**-3, 2.0**-1])
    for a in (1e3, 1e-3):
        Wa, ba = fit_l1_logreg(a * X, y, [2.0**-3 / a, 2.0**-1 / a])
        np.testing.assert_allclose(Wa * a, W, atol=2e-3 * np.abs(W).max())
        np.testing.assert_allclose(ba, b, atol=5e-3)


def test_single_unit_threshold_and_sign():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    v = np.where(y == 1, rng.uniform(1.0, 2.0, 200), rng.uniform(-2.0, 0.5, 200))
    acc, thr = single_unit(v, y, v, y, +1)
    assert acc == 1.0 and v[y == 0].max() < thr < v[y == 1].min()
    # The same unit negated needs sign -1; the wrong sign cannot separate.
    acc, thr_neg = single_unit(-v, y, -v, y, -1)
    assert acc == 1.0 and thr_neg == pytest.approx(-thr)
    assert single_unit(-v, y, -v, y, +1)[0] < 0.6
    # On overlapping data the threshold is the best of every cut (brute force over all midpoints).
    v = rng.normal(size=300) + 0.7 * (y2 := rng.integers(0, 2, 300))
    acc, thr = single_unit(v, y2, v, y2, +1)
    u = np.unique(v)
    cuts = np.concatenate([[u[0] - 1], (u[1:] + u[:-1]) / 2, [u[-1] + 1]])
    best = max(np.mean((v > c) == (y2 == 1)) for c in cuts)
    assert acc == pytest.approx(best) and best > 0.6


def test_stratified_subsample_keeps_both_classes():
    y = np.array([1] * 5 + [0] * 95)
    rng = np.random.default_rng(0)
    for size in (2, 10, 50, 100):
        idx = stratified_subsample(y, size, rng)
        assert idx.size == len(set(idx.tolist())) == size
        assert 0 < y[idx].sum() < size


@pytest.mark.slow
def test_data_efficiency_curves():
    sizes = (10, 50, 200, 600)
    res = data_efficiency(TRAIN, TEST, sizes=sizes, reps=8, C=2.0**-2, unit=(3, 1))
    assert res["sizes"] == list(sizes)
    for prefix in ("", "unit_"):
        mean, p10, p90 = (np.array(res[prefix + k]) for k in ("mean", "p10", "p90"))
        assert mean.shape == p10.shape == p90.shape == (len(sizes),)
        assert np.all(p10 <= mean + 1e-12) and np.all(mean <= p90 + 1e-12)
        assert mean[-1] >= mean[0]
    assert res["mean"][-1] > 0.7 and res["mean"][0] < res["mean"][-1]
    # At the full size every rep is the whole train set: no spread, and the fit equals the plain one.
    assert res["p10"][-1] == res["p90"][-1]
    W, b = fit_l1_logreg(*TRAIN, [2.0**-2])
    assert res["mean"][-1] == pytest.approx(_accuracy(*TEST, W, b)[0], abs=1 / 600 + 1e-9)


def test_data_efficiency_fits_each_subsample_like_a_plain_fit():
    # Same seed → same stratified draws; each rep of the vmapped batch must equal fitting that subsample alone.
    res = data_efficiency(TRAIN, TEST, sizes=(40,), reps=3, seed=5, C=2.0**-1, unit=(3, 1))
    rng = np.random.default_rng(5)
    acc, unit_acc = [], []
    for _ in range(3):
        idx = stratified_subsample(TRAIN[1], 40, rng)
        W, b = fit_l1_logreg(TRAIN[0][idx], TRAIN[1][idx], [2.0**-1])
        acc.append(_accuracy(*TEST, W, b)[0])
        unit_acc.append(single_unit(TRAIN[0][idx, 3], TRAIN[1][idx], TEST[0][:, 3], TEST[1], 1)[0])
    assert res["mean"][0] == pytest.approx(np.mean(acc), abs=1 / 600)
    assert res["p90"][0] == pytest.approx(np.percentile(acc, 90), abs=1 / 600)
    assert res["unit_mean"][0] == pytest.approx(np.mean(unit_acc))
    assert res["unit_p10"][0] == pytest.approx(np.percentile(unit_acc, 10))


def test_bag_of_bytes():
    F = bag_of_bytes([b"aab", b"\x00\xff", b"z" * 7, b""])
    assert F.shape == (4, 256) and F.dtype == np.float32
    np.testing.assert_allclose(F[:3].sum(axis=1), 1.0, rtol=1e-6)
    assert F[0, ord("a")] == pytest.approx(2 / 3) and F[0, ord("b")] == pytest.approx(1 / 3)
    assert F[1, 0] == F[1, 255] == 0.5 and F[2, ord("z")] == 1.0
    assert np.count_nonzero(F) == 5 and not F[3].any()
