"""The L1 logistic-regression probe of the sentiment-neuron study (Radford, Jozefowicz & Sutskever 2017).

Per C the objective is liblinear's, `||w||_1 + C Σ_i log(1 + exp(-s_i (w·x_i + b)))` with s_i = ±1, i.e. the
mean logistic loss + λ||w||_1 with λ = 1/(C n); unlike liblinear the intercept is not penalised. It is solved
by FISTA with adaptive restart, one compiled program for the whole C grid (vmap). The answer is for the raw
features, as the paper fed them to sklearn; the solver works on centred unit-variance columns with a rescaled
L1 weight (the same problem, better conditioned) and a Lipschitz step, so any feature scale works.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# The paper's grid of inverse regularisation strengths, 2^-8 … 2^0.
DEFAULT_CS = 2.0 ** np.arange(-8, 1)

# Subspace iteration on a block of vectors costs about what one vector does (each pass is bound by reading X)
# and converges to λmax much faster; its top Ritz value is a lower bound, hence a small safety margin.
_POWER_ITERS = 30
_POWER_BLOCK = 8
_LIPSCHITZ_SAFETY = 1.05


# ---------------------------------------------------------------------------------------------
# The solver


def _lipschitz(Xs: jax.Array) -> jax.Array:
    """Lipschitz constant of the mean logistic loss's gradient in (v, b) for centred features Xs."""
    n, d = Xs.shape
    m = min(_POWER_BLOCK, d)
    V0, _ = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (d, m), Xs.dtype))

    def power(_, V):
        Q, _ = jnp.linalg.qr(Xs.T @ (Xs @ V))
        return Q

    XV = Xs @ jax.lax.fori_loop(0, _POWER_ITERS, power, V0)
    top = jnp.linalg.eigvalsh(XV.T @ XV)[-1]
    # Centred columns are orthogonal to the intercept's column of ones, whose eigenvalue is n.
    return _LIPSCHITZ_SAFETY * jnp.maximum(top, n) / (4.0 * n)


def _fista_step(Xs, y, pen, step, s):
    """One FISTA step with gradient-based adaptive restart for one C; s = (v, b, v_prev, b_prev, z, z_prev, t)."""
    v, b, vp, bp, z, zp, t = s
    t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
    beta = (t - 1.0) / t_next
    yv, yb = v + beta * (v - vp), b + beta * (b - bp)
    # Margins are linear in (v, b), so the extrapolated point's margins cost no pass over X.
    zy = z + beta * (z - zp)
    r = jax.nn.sigmoid(zy) - y
    u = yv - step * (r @ Xs) / y.shape[0]
    v_new = jnp.sign(u) * jnp.maximum(jnp.abs(u) - step * pen, 0.0)
    b_new = yb - step * jnp.mean(r)
    z_new = Xs @ v_new + b_new
    # O'Donoghue & Candès: drop the momentum when it points against the proximal step.
    restart = jnp.vdot(yv - v_new, v_new - v) + (yb - b_new) * (b_new - b) > 0
    t_new = jnp.where(restart, jnp.ones_like(t), t_next)
    # The largest change of any margin is dimensionless, so the tolerance does not depend on feature scale.
    delta = jnp.max(jnp.abs(z_new - z))
    return (v_new, b_new, v, b, z_new, z, t_new), delta


def _fit_one(X, y, lams, max_iter, tol):
    """All λ on one (X, y): (W (k, d), b (k,), iterations (k,)) in the original feature coordinates."""
    n, d = X.shape
    k = lams.shape[0]
    mu = X.mean(axis=0)
    sd = jnp.sqrt(jnp.mean((X - mu) ** 2, axis=0))
    sd = jnp.where(sd > 0, sd, 1.0)
    # Solve in v = w * sd on centred, unit-variance columns: an exact reparametrisation of the raw-feature
    # problem (b' = b + w·μ, and the L1 weight of v_j becomes λ / sd_j), far better conditioned for FISTA
    # when units differ in scale or share a mean. Nothing about the answer is standardised.
    Xs = (X - mu) / sd
    step = 1.0 / _lipschitz(Xs)
    pen = lams[:, None] / sd  # (k, d)
    p = jnp.clip(jnp.mean(y), 1e-6, 1.0 - 1e-6)
    # The best intercept for w = 0: strongly regularised fits are done after one step.
    b0 = jnp.full((k,), jnp.log(p / (1.0 - p)), X.dtype)
    V0, Z0 = jnp.zeros((k, d), X.dtype), jnp.broadcast_to(b0[:, None], (k, n))
    s0 = (V0, b0, V0, b0, Z0, Z0, jnp.ones((k,), X.dtype))
    # One program for the whole C grid: vmap the step over C, stop each C on its own, the loop when all have.
    vstep = jax.vmap(_fista_step, in_axes=(None, None, 0, None, 0))

    def cond(c):
        it, _, delta, _ = c
        return (it < max_iter) & jnp.any(delta > tol)

    def body(c):
        it, s, delta, iters = c
        active = delta > tol
        s_new, d_new = vstep(Xs, y, pen, step, s)
        keep = lambda new, old: jnp.where(active.reshape((k,) + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
        s = jax.tree.map(keep, s_new, s)
        return it + 1, s, jnp.where(active, d_new, delta), iters + active

    c0 = (0, s0, jnp.full((k,), jnp.inf, X.dtype), jnp.zeros((k,), jnp.int32))
    _, (V, bc, *_), _, iters = jax.lax.while_loop(cond, body, c0)
    W = V / sd
    return W, bc - W @ mu, iters


_fit = jax.jit(_fit_one)
# Many same-sized subsamples at once (data efficiency): each has its own centring, scale, step and λ grid.
_fit_batch = jax.jit(jax.vmap(_fit_one, in_axes=(0, 0, None, None, None)))


def _prepare(X, y, Cs):
    X = jnp.asarray(np.asarray(X, np.float32))
    y = np.asarray(y).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    Cs = np.atleast_1d(np.asarray(Cs, np.float64))
    if (Cs <= 0).any():
        raise ValueError(f"every C must be > 0, got {Cs.tolist()}")
    return X, jnp.asarray(y, jnp.float32), Cs


def fit_l1_logreg(X, y, Cs, *, max_iter: int = 3000, tol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """L1 logistic regression for every C at once: (W (len(Cs), d), b (len(Cs),)), liblinear's objective.

    `tol` bounds the largest change of any margin w·x_i + b over one iteration at convergence.
    """
    W, b, _ = _fit_with_info(X, y, Cs, max_iter=max_iter, tol=tol)
    return W, b


def _fit_with_info(X, y, Cs, *, max_iter: int = 3000, tol: float = 1e-5):
    X, y, Cs = _prepare(X, y, Cs)
    lams = jnp.asarray(1.0 / (Cs * X.shape[0]), jnp.float32)
    W, b, k = _fit(X, y, lams, max_iter, tol)
    return np.asarray(W), np.asarray(b), np.asarray(k)


def l1_logreg_objective(X, y, w, b, C: float) -> float:
    """liblinear's objective ||w||_1 + C Σ log(1 + exp(-s_i (w·x_i + b))), in float64, intercept unpenalised."""
    z = np.asarray(X, np.float64) @ np.asarray(w, np.float64) + float(b)
    s = 2.0 * np.asarray(y, np.float64).ravel() - 1.0
    return float(np.abs(np.asarray(w, np.float64)).sum() + C * np.logaddexp(0.0, -s * z).sum())


# ---------------------------------------------------------------------------------------------
# Evaluation


def _accuracy(X, y, W, b) -> np.ndarray:
    """Accuracy of each row of W (k, d) with intercepts b (k,): an array of k floats."""
    pred = (np.asarray(X, np.float32) @ np.asarray(W, np.float32).T + np.asarray(b, np.float32)) > 0
    return (pred == (np.asarray(y).ravel()[:, None] == 1)).mean(axis=0)


def _best_threshold(values: np.ndarray, y: np.ndarray, sign: int) -> float:
    """The threshold maximising train accuracy of `sign*value > sign*threshold` → positive."""
    v = sign * np.asarray(values, np.float64).ravel()
    pos = np.asarray(y).ravel() == 1
    order = np.argsort(v, kind="stable")
    v, pos = v[order], pos[order]
    uniq, first = np.unique(v, return_index=True)
    # A cut just above uniq[j] calls everything ≤ uniq[j] negative: count negatives below, positives above.
    last = np.append(first[1:], v.size)  # one past the last index of each unique value
    neg_below = np.cumsum(~pos)[last - 1]
    pos_above = pos.sum() - np.cumsum(pos)[last - 1]
    correct = np.concatenate([[pos.sum()], neg_below + pos_above])  # first entry: the cut below every value
    cuts = np.concatenate([[uniq[0] - 1.0], (uniq[:-1] + uniq[1:]) / 2.0, [uniq[-1] + 1.0]])
    return float(sign * cuts[int(np.argmax(correct))])


def single_unit(train_values, train_y, test_values, test_y, sign: int) -> tuple[float, float]:
    """(test accuracy, threshold) of one feature: `sign*value > sign*threshold` → positive, threshold fit on train."""
    if sign not in (1, -1):
        raise ValueError(f"sign must be +1 or -1, got {sign}")
    threshold = _best_threshold(train_values, train_y, sign)
    pred = sign * np.asarray(test_values, np.float64).ravel() > sign * threshold
    return float((pred == (np.asarray(test_y).ravel() == 1)).mean()), threshold


def probe(train, dev, test, Cs=DEFAULT_CS, **fit_kwargs) -> dict:
    """Fit every C on train, keep the best on dev (ties → smaller C), score on test; plain JSON-able values.

    `coef` is a numpy array (d,) for the caller to keep out of JSON; `unit` is the largest-|coef| feature alone.
    """
    (Xtr, ytr), (Xdv, ydv), (Xte, yte) = train, dev, test
    Cs = np.sort(np.atleast_1d(np.asarray(Cs, np.float64)))
    W, b = fit_l1_logreg(Xtr, ytr, Cs, **fit_kwargs)
    dev_acc = _accuracy(Xdv, ydv, W, b)
    nonzero = (np.abs(W) > 0).sum(axis=1)
    # argmax takes the first maximum and Cs are ascending, so a tie goes to the sparser fit.
    i = int(np.argmax(dev_acc))
    coef = W[i]
    unit = int(np.argmax(np.abs(coef)))
    # All-zero weights have no unit worth naming; keep +1 so the rule is still defined.
    sign = 1 if coef[unit] >= 0 else -1
    Xtr, Xte = np.asarray(Xtr), np.asarray(Xte)
    unit_acc, threshold = single_unit(Xtr[:, unit], ytr, Xte[:, unit], yte, sign)
    return {
        "C": float(Cs[i]),
        "accuracy": float(_accuracy(Xte, yte, W[i : i + 1], b[i : i + 1])[0]),
        "dev_accuracy": float(dev_acc[i]),
        "nonzero": int(nonzero[i]),
        "coef": coef,
        "intercept": float(b[i]),
        "per_C": [
            {"C": float(c), "dev_accuracy": float(a), "nonzero": int(z)}
            for c, a, z in zip(Cs, dev_acc, nonzero, strict=True)
        ],
        "unit": {"index": unit, "sign": sign, "accuracy": unit_acc, "threshold": threshold},
    }


# ---------------------------------------------------------------------------------------------
# Data efficiency: accuracy against the number of labelled training examples


def _default_sizes(n: int) -> list[int]:
    # 10, 20, 50, 100, … below n, then all n labels.
    sizes = [m * 10**e for e in range(1, 12) for m in (1, 2, 5) if m * 10**e < n]
    return sizes + [n]


def stratified_subsample(y, size: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `size` examples drawn without replacement, class rates as in y and at least one of each."""
    y = np.asarray(y).ravel()
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    if pos.size == 0 or neg.size == 0:
        raise ValueError("need examples of both classes")
    if not 2 <= size <= y.size:
        raise ValueError(f"size must be in [2, {y.size}], got {size}")
    k = int(np.clip(round(size * pos.size / y.size), max(1, size - neg.size), min(size - 1, pos.size)))
    return np.concatenate([rng.choice(pos, k, replace=False), rng.choice(neg, size - k, replace=False)])


def data_efficiency(
    train, test, sizes=None, reps: int = 10, seed: int = 0, *, C: float, unit=None, max_iter: int = 3000, tol=1e-5
) -> dict:
    """Test accuracy against train size: `reps` stratified subsamples per size, all reps of a size in one vmap.

    Returns {"sizes", "mean", "p10", "p90"} for the L1 probe at `C` and, with unit=(index, sign), the same
    curve ("unit_mean", "unit_p10", "unit_p90") of that single feature with its threshold fit on the subsample.
    """
    Xtr, ytr = np.asarray(train[0], np.float32), np.asarray(train[1]).ravel()
    Xte, yte = np.asarray(test[0], np.float32), np.asarray(test[1]).ravel()
    sizes = _default_sizes(ytr.size) if sizes is None else [int(s) for s in sizes]
    rng = np.random.default_rng(seed)
    out = {"sizes": sizes, "mean": [], "p10": [], "p90": []}
    if unit is not None:
        index, sign = int(unit[0]), int(unit[1])
        out.update(unit_mean=[], unit_p10=[], unit_p90=[])
    for size in sizes:
        idx = np.stack([stratified_subsample(ytr, size, rng) for _ in range(reps)])
        lams = jnp.asarray([1.0 / (C * size)], jnp.float32)
        W, b, _ = _fit_batch(jnp.asarray(Xtr[idx]), jnp.asarray(ytr[idx], jnp.float32), lams, max_iter, tol)
        acc = _accuracy(Xte, yte, np.asarray(W)[:, 0], np.asarray(b)[:, 0])
        for key, v in zip(("mean", "p10", "p90"), _stats(acc), strict=True):
            out[key].append(v)
        if unit is not None:
            accs = [single_unit(Xtr[r, index], ytr[r], Xte[:, index], yte, sign)[0] for r in idx]
            for key, v in zip(("unit_mean", "unit_p10", "unit_p90"), _stats(accs), strict=True):
                out[key].append(v)
    return out


def _stats(acc) -> tuple[float, float, float]:
    a = np.asarray(acc, np.float64)
    return float(a.mean()), float(np.percentile(a, 10)), float(np.percentile(a, 90))


# ---------------------------------------------------------------------------------------------
# Baseline features


def bag_of_bytes(byte_strings: list[bytes]) -> np.ndarray:
    """Byte-frequency histogram per text (n × 256 float32, rows sum to 1; an empty text is a row of zeros)."""
    lengths = np.array([len(s) for s in byte_strings], np.int64)
    flat = np.frombuffer(b"".join(byte_strings), np.uint8).astype(np.int64)
    rows = np.repeat(np.arange(len(byte_strings)), lengths)
    counts = np.bincount(rows * 256 + flat, minlength=256 * len(byte_strings)).reshape(len(byte_strings), 256)
    return (counts / np.maximum(lengths, 1)[:, None]).astype(np.float32)
