"""Representation health and policy-path tools.

Representation health (pure jax.numpy; every function is jit- and vmap-able with fixed output shapes):
- srank (Kumar et al. 2021, "Implicit Under-Parameterization") and erank (Roy & Vetterli 2007) of the
  penultimate features;
- dormant units (Sokar et al. 2023, "The Dormant Neuron Phenomenon") for dense (B, d) and conv (B, H, W, C)
  activations, and saturated tanh units;
- `measure`, which bundles them into one flat dict of float32 scalars per network.

Policy paths (Tang et al. 2024, "The Ladder in Chaos"): a path P is an (n, m) array of n parameter snapshots
of one layer in time order; its temporal SVD is uncentered, P = U Σ Vᵀ.
- analysis side (numpy, float64, offline): `path_svd`, `dims_for`, `accumulated_change`, `final_change`,
  `detour_ratio`, `rebuild`, `coordinates`;
- in-loop side (jax, float32, jit/vmap-able): `trim_boost` and `trim`, the PPTB update of the last row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

TAUS = (0.0, 0.025, 0.1)

# The array functions below are wrapped in jax.jit: inside a caller's jit/vmap that is free (it inlines), and
# called eagerly they compile one program per shape instead of dispatching (and compiling) op by op.

# dims_for compares cumulative shares with beta; summation round-off must not push an exact rank-r path
# (whose trailing singular values are ~1e-16 of the top one) past r, even for beta = 1.
_SHARE_TOL = 1e-9


# --------------------------------------------------------------------------------------------------------
# Representation health
# --------------------------------------------------------------------------------------------------------


def _as_matrix(features):
    """(B, ...) -> (B, d) with the trailing axes flattened."""
    features = jnp.asarray(features)
    return features.reshape(features.shape[0], -1)


@jax.jit
def singular_values(features):
    """Singular values of features (B, d), descending, shape (min(B, d),)."""
    return jnp.linalg.svd(jnp.asarray(features), compute_uv=False)


@jax.jit
def srank(features, delta=0.01):
    """Effective rank of Kumar et al. 2021: fewest singular values holding 1 - delta of their sum (int32).

    All-zero features give 0.
    """
    s = singular_values(features)
    cum = jnp.cumsum(s)
    total = cum[-1]
    # Dividing by the cumsum's own last entry (not a separate sum) keeps the last share at exactly 1, so k
    # never exceeds len(s) through round-off.
    share = cum / jnp.where(total > 0, total, 1.0)
    k = jnp.minimum(jnp.sum(share < 1.0 - delta) + 1, s.shape[0])
    return jnp.where(total > 0, k, 0).astype(jnp.int32)


@jax.jit
def erank(features):
    """Entropy effective rank exp(H(p)), p = σ / Σσ, with 0·log 0 = 0 (float32); all-zero features give 0."""
    s = singular_values(features).astype(jnp.float32)
    total = jnp.sum(s)
    p = s / jnp.where(total > 0, total, 1.0)
    # log of a placeholder 1 where p == 0, so neither the value nor a gradient sees log(0).
    entropy = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.where(total > 0, jnp.exp(entropy), 0.0).astype(jnp.float32)


def _unit_axes(h):
    """Axes to reduce over so that only the last (unit / channel) axis remains."""
    return tuple(range(h.ndim - 1))


@jax.jit
def dormant_units(h, tau):
    """Boolean mask (d,) of dormant units of h (B, d) or (B, H, W, C): mean|h_i| / mean_k mean|h_k| <= tau."""
    h = jnp.asarray(h)
    activity = jnp.mean(jnp.abs(h), axis=_unit_axes(h))
    layer_mean = jnp.mean(activity)
    # A layer that is exactly zero everywhere has no activity to normalise by: every unit counts as dormant
    # (score 0 <= tau for any tau >= 0), rather than 0/0 = NaN.
    score = jnp.where(layer_mean > 0, activity / jnp.where(layer_mean > 0, layer_mean, 1.0), 0.0)
    return score <= tau


def dormant_fraction(h, tau):
    """Fraction of dormant units of h (Sokar et al. 2023) as float32; see dormant_units."""
    return jnp.mean(dormant_units(h, tau).astype(jnp.float32))


@jax.jit
def saturated_units(h, eps=0.01):
    """Boolean mask (d,) of units with |h_i| >= 1 - eps on every state (and position) of the batch."""
    h = jnp.asarray(h)
    return jnp.all(jnp.abs(h) >= 1.0 - eps, axis=_unit_axes(h))


def saturated_fraction(h, eps=0.01):
    """Fraction of tanh units saturated on the whole batch (float32); shapes as in dormant_units."""
    return jnp.mean(saturated_units(h, eps).astype(jnp.float32))


def measure(layers, saturating, *, delta=0.01, eps=0.01):
    """Flat dict of float32 health scalars for one network; `layers` in network order, the last one the
    representation. Keys: srank, erank, dormant_{tau}_{name}, dormant_{tau}, saturated_{name}, saturated."""
    if not layers:
        raise ValueError("measure() needs at least one layer")
    f32 = jnp.float32
    names = list(layers)
    rep = _as_matrix(layers[names[-1]])
    out = {"srank": srank(rep, delta).astype(f32), "erank": erank(rep).astype(f32)}
    # Pooled fractions weight every unit equally, so wide layers count more than narrow ones: sum the
    # per-layer counts instead of averaging per-layer fractions.
    n_units = sum(int(jnp.shape(layers[name])[-1]) for name in names)
    for tau in TAUS:
        count = jnp.zeros((), f32)
        for name in names:
            mask = dormant_units(layers[name], tau)
            out[f"dormant_{tau:g}_{name}"] = jnp.mean(mask.astype(f32))
            count = count + jnp.sum(mask.astype(f32))
        out[f"dormant_{tau:g}"] = count / n_units
    if saturating:
        count = jnp.zeros((), f32)
        n_sat = 0
        for name, h in saturating.items():
            mask = saturated_units(h, eps)
            out[f"saturated_{name}"] = jnp.mean(mask.astype(f32))
            count = count + jnp.sum(mask.astype(f32))
            n_sat += int(jnp.shape(h)[-1])
        out["saturated"] = count / n_sat
    return out


# --------------------------------------------------------------------------------------------------------
# Policy paths: analysis side (numpy, float64)
# --------------------------------------------------------------------------------------------------------


def path_svd(P):
    """Uncentered temporal SVD of a path P (n, m) in float64: (U (n, r), S (r,), Vt (r, m)), r = min(n, m)."""
    return np.linalg.svd(np.asarray(P, dtype=np.float64), full_matrices=False)


def dims_for(S, beta):
    """Fewest leading singular values whose share of sum(S) is >= beta (python int).

    beta <= 0 or an all-zero S gives 0; beta >= 1 gives at most len(S).
    """
    S = np.asarray(S, dtype=np.float64)
    total = S.sum()
    if total <= 0 or beta <= 0:
        return 0
    shares = np.cumsum(S) / total
    # shares[k-1] is the share of the first k values; the tolerance absorbs round-off (see _SHARE_TOL).
    reached = np.nonzero(shares >= beta - _SHARE_TOL)[0]
    return int(reached[0]) + 1 if reached.size else len(S)


def accumulated_change(P):
    """Per-parameter path length Σ_t |θ_{t+1} − θ_t|, shape (m,)."""
    P = np.asarray(P, dtype=np.float64)
    return np.abs(np.diff(P, axis=0)).sum(axis=0)


def final_change(P):
    """Per-parameter net displacement |θ_n − θ_1|, shape (m,)."""
    P = np.asarray(P, dtype=np.float64)
    return np.abs(P[-1] - P[0])


def detour_ratio(P):
    """accumulated_change / final_change per parameter, shape (m,); >= 1, larger = more back and forth.

    Where the final change is 0: inf if the parameter moved and came back, 1.0 if it never moved.
    """
    acc, fin = accumulated_change(P), final_change(P)
    ratio = np.divide(acc, fin, out=np.full_like(acc, np.inf), where=fin > 0)
    ratio[(fin == 0) & (acc == 0)] = 1.0
    return ratio


def rebuild(P, k):
    """Top-k reconstruction U_k Σ_k V_kᵀ of a path, shape (n, m), float64."""
    U, S, Vt = path_svd(P)
    return (U[:, :k] * S[:k]) @ Vt[:k]


def coordinates(U, S):
    """Coordinate paths u_{·,i} σ_i of the temporal SVD, shape (n, r): column i is the path along v_i."""
    return np.asarray(U) * np.asarray(S)[None, :]


# --------------------------------------------------------------------------------------------------------
# Policy paths: in-loop side (jax, float32)
# --------------------------------------------------------------------------------------------------------


def _left_svd(P):
    """Left singular vectors U (n, n) and singular values (n,) (zero-padded) of P (n, m), descending.

    Via the reduced QR Pᵀ = Q R and the SVD of the small factor Rᵀ: P = Rᵀ Qᵀ, so P and Rᵀ share U and Σ.
    Householder QR is backward stable in P itself, whereas the Gram P Pᵀ squares the condition number: with
    nearly equal rows (θ_0 plus displacements of 1e-2 of it) a float32 Gram blurs the minor directions, and
    trimming to k = 3 or 5 was off by 6e-6 and 8e-5 of |θ| against float64, where this route stays within 3e-7.
    Cost is O(m n²) plus an n×n SVD; nothing m×m is formed.
    """
    n, m = P.shape
    _, R = jnp.linalg.qr(P.T, mode="reduced")  # R: (min(m, n), n)
    # full_matrices so U is n×n even when m < n (then the extra directions carry σ = 0).
    U, s, _ = jnp.linalg.svd(R.T, full_matrices=True)
    s = jnp.pad(s, (0, n - s.shape[0]))
    return U, s


@jax.jit
def trim_boost(P, k, boost=0.0, beta=0.0):
    """PPTB update of the last row of a path P (n, m): keep its top-k temporal-SVD coordinates and extrapolate
    them by boost × their latest change. Returns (new last row (m,), k used (int32)).

    k may be traced and is clipped to [0, n] (k = 0 keeps nothing: a zero row); beta > 0 (may be traced too)
    replaces k by the fewest directions whose singular values hold a share >= beta.
    """
    P = jnp.asarray(P)
    P = P.astype(jnp.promote_types(P.dtype, jnp.float32))
    n = P.shape[0]
    U, s = _left_svd(P)

    total = jnp.sum(s)
    share = jnp.cumsum(s) / jnp.where(total > 0, total, 1.0)
    k_beta = jnp.minimum(jnp.sum(share < beta) + 1, n)
    k_beta = jnp.where(total > 0, k_beta, 0)
    k_used = jnp.clip(jnp.where(beta > 0, k_beta, k), 0, n).astype(jnp.int32)
    # A mask over the n directions instead of U[:, :k], so k can be a traced value.
    keep = (jnp.arange(n) < k_used).astype(P.dtype)

    # Σ_{i∈K} x_i (u_iᵀ P) = Pᵀ U_K U_Kᵀ e for a row selector e: project e onto span(U_K) in n-space (small),
    # then take one combination of the rows. Each u_i enters twice, so the sign ambiguity of the singular vectors cancels.
    e_last = jnp.zeros(n, P.dtype).at[n - 1].set(1.0)
    e_step = e_last - jnp.zeros(n, P.dtype).at[n - 2].set(1.0) if n >= 2 else jnp.zeros(n, P.dtype)
    w = U @ (keep * (U.T @ (e_last + boost * e_step)))
    return P.T @ w, k_used


def trim(P, k):
    """Top-k temporal-SVD reconstruction of the last row of P (trim_boost without boost); returns the row."""
    return trim_boost(P, k)[0]
