"""rlx.diagnostics: representation health (srank, erank, dormant and saturated units, measure) and the
policy-path tools (temporal SVD analysis in numpy, trim/boost in jax), against hand-computed values and a
float64 numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import diagnostics as D


def _orthonormal(rng, rows, cols):
    """rows × cols with orthonormal columns."""
    return np.linalg.qr(rng.normal(size=(rows, cols)))[0]


def _with_spectrum(rng, sigma, rows=256, cols=64):
    """A rows × cols matrix whose nonzero singular values are exactly `sigma`."""
    r = len(sigma)
    return (_orthonormal(rng, rows, r) * np.asarray(sigma)) @ _orthonormal(rng, cols, r).T


# ---- srank / erank -------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [1, 5, 17])
def test_srank_of_rank_r_matrix_is_r(r):
    rng = np.random.default_rng(r)
    # Equal singular values: the first r - 1 hold (r-1)/r < 0.99 of the total, so srank must count all r.
    x = jnp.asarray(_with_spectrum(rng, [3.0] * r), jnp.float32)
    assert int(D.srank(x)) == r
    assert D.srank(x).dtype == jnp.int32


def test_srank_decaying_spectrum_by_hand():
    rng = np.random.default_rng(0)
    sigma = 0.5 ** np.arange(64)
    x = jnp.asarray(_with_spectrum(rng, sigma), jnp.float32)
    # Share of the first k is (1 - 0.5^k) / (1 - 0.5^64) ≈ 1 - 0.5^k: k=6 gives 0.984, k=7 gives 0.992,
    # so delta=0.01 (need 0.99) gives 7; delta=0.1 (need 0.9): k=3 gives 0.875, k=4 gives 0.9375, so 4.
    assert int(D.srank(x, 0.01)) == 7
    assert int(D.srank(x, 0.1)) == 4


def test_srank_erank_of_zero_features_are_zero():
    z = jnp.zeros((32, 8))
    assert int(D.srank(z)) == 0
    assert float(D.erank(z)) == 0.0


@pytest.mark.parametrize("d", [8, 64])
def test_erank_of_identity_is_d(d):
    assert float(D.erank(jnp.eye(d))) == pytest.approx(d, abs=1e-4)


def test_erank_ignores_zero_singular_values():
    rng = np.random.default_rng(1)
    # Two equal singular values and 62 zeros: p = (1/2, 1/2, 0, ...), exp(H) = 2 with 0·log 0 = 0.
    x = jnp.asarray(_with_spectrum(rng, [2.0, 2.0]), jnp.float32)
    assert float(D.erank(x)) == pytest.approx(2.0, abs=1e-4)


def test_singular_values_descending():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(20, 7)), jnp.float32)
    s = np.asarray(D.singular_values(x))
    assert s.shape == (7,)
    np.testing.assert_allclose(s, np.linalg.svd(np.asarray(x, np.float64), compute_uv=False), rtol=1e-5)
    assert np.all(np.diff(s) <= 0)


# ---- dormant / saturated -------------------------------------------------------------------------------


def _active(rng, b, d):
    return np.abs(rng.normal(size=(b, d))) + 0.1


def test_one_dead_column_is_one_over_d_dormant_and_measure_reports_it():
    rng = np.random.default_rng(0)
    d = 10
    h0 = _active(rng, 32, d)
    h0[:, 3] = 0.0
    h1 = _active(rng, 32, 6)
    assert float(D.dormant_fraction(jnp.asarray(h0), 0.0)) == np.float32(1 / d)
    mask = np.asarray(D.dormant_units(jnp.asarray(h0), 0.0))
    assert mask.tolist() == [i == 3 for i in range(d)]

    out = D.measure({"h0": jnp.asarray(h0), "h1": jnp.asarray(h1)}, {})
    assert float(out["dormant_0_h0"]) == np.float32(1 / d)
    assert float(out["dormant_0_h1"]) == 0.0
    # Pooled over units, not averaged over layers: 1 dead unit of 16, not (0.1 + 0) / 2.
    assert float(out["dormant_0"]) == pytest.approx(1 / 16, abs=1e-7)


def test_measure_keys_and_dtypes():
    rng = np.random.default_rng(0)
    layers = {"h0": jnp.asarray(_active(rng, 16, 5)), "h1": jnp.asarray(_active(rng, 16, 4))}
    sat = {"tanh_h0": jnp.tanh(layers["h0"]), "tanh_h1": jnp.tanh(layers["h1"])}
    out = D.measure(layers, sat)
    expected = {"srank", "erank", "dormant_0", "dormant_0.025", "dormant_0.1", "saturated",
                "saturated_tanh_h0", "saturated_tanh_h1"}
    expected |= {f"dormant_{t}_{n}" for t in ("0", "0.025", "0.1") for n in ("h0", "h1")}
    assert set(out) == expected
    assert all(v.dtype == jnp.float32 and v.shape == () for v in out.values())
    assert "saturated" not in D.measure(layers, {})


def test_measure_ranks_the_last_layer_flattened():
    rng = np.random.default_rng(3)
    first = jnp.asarray(_with_spectrum(rng, [1.0] * 8, rows=16, cols=8), jnp.float32)  # rank 8
    # Conv-shaped last layer: (B, 2, 2, 3) is ranked as (B, 12), here of rank 3 with equal singular values.
    last = jnp.asarray(_with_spectrum(rng, [2.0] * 3, rows=16, cols=12).reshape(16, 2, 2, 3), jnp.float32)
    out = D.measure({"h0": first, "conv_last": last}, {})
    assert float(out["srank"]) == 3.0
    assert float(out["erank"]) == pytest.approx(3.0, abs=1e-4)


def test_dormant_conv_units_are_channels():
    b, hh, ww, c = 4, 3, 3, 5
    h = np.ones((b, hh, ww, c), np.float32)
    h[..., 2] = 0.0  # dead channel
    h[..., 0] = 0.0
    h[0, 0, 0, 0] = 1.0  # nearly dead: active at one position of one state, mean activity 1/36
    # layer mean = (1/36 + 3) / 5 ≈ 0.606, so channel 0 scores ≈ 0.046: dormant at tau 0.1, not at 0.025.
    got = [float(D.dormant_fraction(jnp.asarray(h), t)) for t in D.TAUS]
    assert got == pytest.approx([0.2, 0.2, 0.4])
    flat = jnp.asarray(h.reshape(-1, c))
    assert np.array_equal(np.asarray(D.dormant_units(jnp.asarray(h), 0.1)), np.asarray(D.dormant_units(flat, 0.1)))
    out = D.measure({"conv0": jnp.asarray(h), "h0": jnp.asarray(np.ones((b, 3), np.float32))}, {})
    assert float(out["dormant_0.1_conv0"]) == pytest.approx(0.4)
    assert float(out["dormant_0.1"]) == pytest.approx(2 / 8)


def test_all_zero_layer_is_all_dormant_without_nans():
    z = jnp.zeros((8, 6))
    for t in D.TAUS:
        assert float(D.dormant_fraction(z, t)) == 1.0
    out = D.measure({"h0": z}, {"tanh_h0": z})
    assert all(np.isfinite(float(v)) for v in out.values())
    assert float(out["srank"]) == 0.0 and float(out["erank"]) == 0.0
    assert float(out["dormant_0_h0"]) == 1.0 and float(out["saturated"]) == 0.0


def test_saturated_fraction_needs_every_state():
    rng = np.random.default_rng(0)
    b, d = 16, 6
    pre = 0.3 * rng.normal(size=(b, d))
    pre[:, 0] = 10.0  # +1 on every state
    pre[:, 1] = np.where(np.arange(b) % 2, 10.0, -10.0)  # ±1 on every state: |h| saturated
    pre[:, 2] = 10.0
    pre[5, 2] = 0.2  # saturated on all but one state: not saturated
    h = jnp.tanh(jnp.asarray(pre, jnp.float32))
    assert np.asarray(D.saturated_units(h)).tolist() == [True, True, False, False, False, False]
    assert float(D.saturated_fraction(h)) == pytest.approx(2 / 6)
    other = jnp.tanh(jnp.full((b, 2), 10.0))  # both saturated
    out = D.measure({"h0": h, "h1": other}, {"tanh_h0": h, "tanh_h1": other})
    assert float(out["saturated_tanh_h0"]) == pytest.approx(2 / 6)
    assert float(out["saturated_tanh_h1"]) == 1.0
    assert float(out["saturated"]) == pytest.approx(4 / 8)
    # conv-shaped: channel 0 saturated at every state and position, channel 1 not at one position
    conv = np.full((2, 3, 3, 2), 0.999, np.float32)
    conv[1, 2, 1, 1] = 0.5
    assert np.asarray(D.saturated_units(jnp.asarray(conv))).tolist() == [True, False]


def test_measure_jit_vmap_over_seeds_matches_per_seed():
    rng = np.random.default_rng(0)
    seeds = 3
    h0 = np.maximum(rng.normal(size=(seeds, 64, 16)), 0.0)
    h0[1, :, :4] = 0.0  # seed 1 has 4 dead units
    h1 = np.maximum(rng.normal(size=(seeds, 64, 8)) @ np.diag([1.0] * 4 + [1e-3] * 4), 0.0)
    t1 = np.tanh(3.0 * rng.normal(size=(seeds, 64, 8)))
    t1[2, :, 0] = 1.0
    layers = {"h0": jnp.asarray(h0, jnp.float32), "h1": jnp.asarray(h1, jnp.float32)}
    sat = {"tanh_h1": jnp.asarray(t1, jnp.float32)}
    batched = jax.jit(jax.vmap(lambda lay, s: D.measure(lay, s)))(layers, sat)
    for i in range(seeds):
        one = D.measure({k: v[i] for k, v in layers.items()}, {k: v[i] for k, v in sat.items()})
        assert set(one) == set(batched)
        for key, val in one.items():
            np.testing.assert_allclose(np.asarray(batched[key][i]), np.asarray(val), rtol=1e-5, err_msg=key)
    assert float(batched["dormant_0_h0"][1]) == pytest.approx(4 / 16)
    assert float(batched["saturated_tanh_h1"][2]) == pytest.approx(1 / 8)


# ---- policy paths: analysis ----------------------------------------------------------------------------


def _synthetic_path(theta0_scale):
    """200 snapshots of 500 parameters: large smooth monotone moves along 2 orthonormal directions, small
    oscillations along 30 others, plus a fixed offset θ_0. Returns (P, the 2 true directions (2, m))."""
    rng = np.random.default_rng(0)
    n, m, n_osc = 200, 500, 30
    basis = _orthonormal(rng, m, 2 + n_osc).T
    s = np.linspace(0.0, 1.0, n)[:, None]
    # Fast-early and late coordinates, so the two are far from collinear as time series.
    major = np.hstack([10.0 * np.sqrt(s), 10.0 * s**4])
    osc = 0.02 * np.sin(2 * np.pi * rng.uniform(5, 40, n_osc) * s + rng.uniform(0, 2 * np.pi, n_osc))
    theta0 = theta0_scale * rng.normal(size=m)
    return theta0 + np.hstack([major, osc]) @ basis, basis[:2]


def _cosines(Vt_k, true):
    """Cosines of the principal angles between span(true rows) and span(Vt_k rows)."""
    return np.linalg.svd(Vt_k @ true.T, compute_uv=False)


def test_temporal_svd_finds_two_major_directions():
    P, true = _synthetic_path(0.3)
    # On the displacement the 2 moves dominate: 1 direction holds ~0.76 of Σσ, 2 hold ~0.96.
    _, S, Vt = D.path_svd(P - P[0])
    assert D.dims_for(S, 0.9) == 2
    assert _cosines(Vt[:2], true).min() > 0.999
    # Uncentered, θ_0 takes a direction of its own (~0.71, 0.90, 0.97 for 1, 2, 3): 3 directions at 0.9,
    # and the true moves lie in the top 3 rather than the top 2.
    _, S, Vt = D.path_svd(P)
    assert D.dims_for(S, 0.9) <= 3
    assert _cosines(Vt[:3], true).min() > 0.999


def test_dims_for_edges():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(10, 4)) @ rng.normal(size=(4, 50))  # exact rank 4
    _, S, _ = D.path_svd(P)
    assert D.dims_for(S, 1.0) == 4
    assert D.dims_for(S, 1 - 1e-6) == 4
    assert D.dims_for(S, 0.0) == 0
    assert D.dims_for(np.zeros(5), 0.5) == 0
    assert D.dims_for([3.0, 1.0], 0.75) == 1
    assert D.dims_for([3.0, 1.0], 0.76) == 2
    assert D.dims_for([3.0, 1.0], 2.0) == 2


def test_detour_ratio_out_and_back():
    P = np.array([[0.0, 5.0, 0.0],
                  [1.0, 5.0, 2.0],
                  [2.0, 5.0, 1.0],
                  [1.0, 5.0, 1.0],
                  [0.0, 5.0, 1.0]])
    np.testing.assert_allclose(D.accumulated_change(P), [4.0, 0.0, 3.0])
    np.testing.assert_allclose(D.final_change(P), [0.0, 0.0, 1.0])
    ratio = D.detour_ratio(P)
    assert ratio[0] == np.inf  # moved and came back
    assert ratio[1] == 1.0  # never moved
    assert ratio[2] == pytest.approx(3.0)


def test_rebuild_and_coordinates():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(6, 40))
    U, S, Vt = D.path_svd(P)
    np.testing.assert_allclose(D.rebuild(P, 6), P, atol=1e-12)
    np.testing.assert_allclose(D.coordinates(U, S) @ Vt, P, atol=1e-12)
    r2 = D.rebuild(P, 2)
    assert np.linalg.matrix_rank(r2) == 2
    # Eckart–Young: the rank-2 error is the energy of the dropped singular values.
    assert np.linalg.norm(P - r2) == pytest.approx(np.sqrt(np.sum(S[2:] ** 2)))


# ---- policy paths: trim / boost ------------------------------------------------------------------------


def _subspace_path(rng, n=10, m=2000, k=3):
    """Rows in a fixed k-dim subspace, with a large common offset inside it."""
    basis = _orthonormal(rng, m, k).T
    coef = np.array([100.0, -40.0, 20.0])[:k] + rng.normal(size=(n, k))
    return jnp.asarray(coef @ basis, jnp.float32)


def test_trim_keeps_a_path_that_lies_in_k_dims():
    P = _subspace_path(np.random.default_rng(0))
    last = np.asarray(P[-1])
    np.testing.assert_allclose(np.asarray(D.trim(P, 3)), last, rtol=1e-5, atol=1e-5 * np.abs(last).max())
    # Rank 1 drops the within-subspace displacement: a change 100x the tolerance above, as the reference says.
    one = np.asarray(D.trim(P, 1))
    assert np.linalg.norm(one - last) > 1e-3 * np.linalg.norm(last)
    np.testing.assert_allclose(one, _reference(P, 1, 0.0), rtol=1e-5, atol=1e-5 * np.abs(last).max())
    # Inside its own subspace the boost is plain extrapolation of the last step.
    row, k = D.trim_boost(P, 3, boost=0.5)
    expected = last + 0.5 * (last - np.asarray(P[-2]))
    np.testing.assert_allclose(np.asarray(row), expected, rtol=1e-5, atol=1e-5 * np.abs(last).max())
    assert int(k) == 3


def _reference(P, k, boost):
    """float64 numpy: θ̂ = Σ_{i<k} (c_{n,i} + boost (c_{n,i} − c_{n−1,i})) v_i, c = U Σ."""
    U, S, Vt = np.linalg.svd(np.asarray(P, np.float64), full_matrices=False)
    c = U[:, :k] * S[:k]
    return (c[-1] + boost * (c[-1] - c[-2])) @ Vt[:k]


def _nearly_equal_rows(rng, n=10, m=5000):
    """θ_0 plus random-walk displacements of ~1e-2 of it along n directions with a decaying spectrum."""
    theta0 = rng.normal(size=m)
    dirs = _orthonormal(rng, m, n).T
    walk = np.cumsum(rng.normal(size=(n, n)), axis=0) * (1e-2 * np.sqrt(m) * 0.5 ** np.arange(n))
    return (theta0 + walk @ dirs).astype(np.float32)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("boost", [0.0, 0.5])
def test_trim_boost_matches_float64_reference(k, boost):
    P = _nearly_equal_rows(np.random.default_rng(k))
    ref = _reference(P, k, boost)
    row, k_used = D.trim_boost(jnp.asarray(P), k, boost=boost)
    assert row.dtype == jnp.float32 and k_used.dtype == jnp.int32 and int(k_used) == k
    row = np.asarray(row, np.float64)
    assert np.linalg.norm(row - ref) <= 1e-6 * np.linalg.norm(ref)
    # Relative to the change itself (~2e-4 of the row for k = 5), measured ~1e-3 at worst; a float32 Gram
    # eigendecomposition instead gives ~5e-1 there (and ~6e-6 of |ref| at k = 3, failing the line above).
    change = ref - P[-1].astype(np.float64)
    assert np.linalg.norm(row - ref) <= 1e-2 * np.linalg.norm(change)


def test_trim_boost_when_fewer_parameters_than_snapshots():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(6, 4)).astype(np.float32)
    for k in (2, 4):
        row, _ = D.trim_boost(jnp.asarray(P), k, boost=0.3)
        np.testing.assert_allclose(np.asarray(row), _reference(P, k, 0.3), rtol=1e-4, atol=1e-5)


def test_trim_boost_k_by_beta():
    rng = np.random.default_rng(0)
    sigma = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25])
    # Shares 0.508, 0.762, 0.889, 0.952, 0.984, 1: beta 0.5 → 1, 0.75 → 2, 0.9 → 4, 0.99 → 6.
    P = jnp.asarray((_orthonormal(rng, 6, 6) * sigma) @ _orthonormal(rng, 300, 6).T, jnp.float32)
    for beta, expected in [(0.5, 1), (0.75, 2), (0.9, 4), (0.99, 6)]:
        row, k_used = D.trim_boost(P, 2, beta=beta)
        assert int(k_used) == expected == D.dims_for(sigma, beta)
        np.testing.assert_allclose(np.asarray(row), np.asarray(D.trim(P, expected)), atol=1e-5)
    assert int(D.trim_boost(P, 2, beta=0.0)[1]) == 2


def test_trim_boost_jit_vmap_with_traced_k():
    rng = np.random.default_rng(0)
    Ps = jnp.asarray(np.stack([_nearly_equal_rows(rng, m=300) for _ in range(3)]))
    ks = jnp.array([1, 2, 4])
    rows, k_used = jax.jit(jax.vmap(D.trim_boost, in_axes=(0, 0, None)))(Ps, ks, 0.5)
    assert np.asarray(k_used).tolist() == [1, 2, 4]
    for i in range(3):
        np.testing.assert_allclose(np.asarray(rows[i]), _reference(Ps[i], int(ks[i]), 0.5), rtol=1e-5, atol=1e-5)
