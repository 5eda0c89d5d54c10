"""Adaptive parameter-space noise: target distances, the perturbation mask, σ adaptation, per-env resampling."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx import exploration
from rlx.agents.core import hparams
from rlx.exploration import param_noise as pn
from rlx.nets import MLP

NUM_ACTIONS = 3
OBS_DIM = 4


def _cfg(**param):
    return C.Config(noise="param", param=dataclasses.replace(C.ParamNoiseConfig(), **param))


@functools.cache  # flax init runs op by op here; each distinct net costs a second or two on CPU
def _net(hidden=(16, 16), layer_norm=True, seed=0):
    net = MLP(hidden=hidden, num_actions=NUM_ACTIONS, layer_norm=layer_norm)
    params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, OBS_DIM)))
    return params, (lambda p, o, k=None: net.apply(p, o))


def _obs(n, seed=1):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, OBS_DIM))


HP = hparams(C.Config())


# act vmaps over envs, which runs faster jitted than op by op on CPU; adapt runs faster eagerly (op caches are
# shared across the differently configured strategies, while each would need its own compile).
def _act(s, state, key, q_apply, params, obs, step=0):
    return jax.jit(lambda st, k, p, o, t: s.act(st, k, q_apply, p, o, t, HP))(state, key, params, obs, jnp.int32(step))


def _adapt(s, state, key, q_apply, params, obs, step=0):
    return s.adapt(state, key, q_apply, params, obs, jnp.int32(step), HP)


# --- target distances -------------------------------------------------------------------------------


def test_target_delta_kl_values():
    assert round(float(pn.target_delta_kl(0.1, 2)), 4) == 0.0513
    for a in (2, 5, 18):
        np.testing.assert_allclose(float(pn.target_delta_kl(1.0, a)), np.log(a), rtol=1e-6)


@pytest.mark.parametrize("eps,a", [(0.1, 2), (0.3, 4), (0.05, 18)])
def test_target_delta_kl_is_kl_of_greedy_to_eps_greedy(eps, a):
    greedy_dist = np.zeros(a)
    greedy_dist[0] = 1.0
    eps_dist = np.full(a, eps / a)
    eps_dist[0] += 1.0 - eps
    support = greedy_dist > 0  # 0 log 0 = 0
    kl = np.sum(greedy_dist[support] * np.log(greedy_dist[support] / eps_dist[support]))
    np.testing.assert_allclose(float(pn.target_delta_kl(eps, a)), kl, rtol=1e-5)


def test_target_delta_disagree_is_non_greedy_probability():
    np.testing.assert_allclose(float(pn.target_delta_disagree(0.2, 4)), 0.2 * 0.75, rtol=1e-6)
    assert float(pn.target_delta_disagree(1.0, 1)) == 0.0


def test_kl_distance_matches_direct_kl_and_is_stable():
    q1 = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    q2 = np.array([[0.0, 3.0, 1.0], [1.0, -1.0, 0.0]])

    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(q1), softmax(q2)
    expected = np.mean(np.sum(p * np.log(p / q), -1))
    np.testing.assert_allclose(float(pn.kl_distance(jnp.array(q1), jnp.array(q2))), expected, rtol=1e-5)
    assert float(pn.kl_distance(jnp.array(q1), jnp.array(q1))) == pytest.approx(0.0, abs=1e-7)
    # Q-values in the thousands would overflow a naive exp; log-softmax stays finite.
    big = pn.kl_distance(jnp.array([[1e4, 0.0]]), jnp.array([[0.0, 1e4]]))
    np.testing.assert_allclose(float(big), 1e4, rtol=1e-5)


def test_disagree_distance_counts_argmax_changes():
    q1 = jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 5.0]])
    q2 = jnp.array([[0.0, 1.0], [0.0, 1.0], [2.0, 1.5], [5.0, 0.0]])
    assert float(pn.disagree_distance(q1, q2)) == 0.5


# --- mask and perturbation --------------------------------------------------------------------------


def _flat(tree):
    return {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_mask_perturbs_dense_and_never_layernorm():
    params, _ = _net(layer_norm=True)
    mask = pn.perturbation_mask(params, "all_dense")
    xi = pn.sample_xi(jax.random.PRNGKey(2), params, mask)
    before, after, flags = _flat(params), _flat(pn.perturb(params, xi, 0.1, mask)), _flat(mask)
    assert any("LayerNorm" in k for k in before)
    for k in before:
        if "LayerNorm" in k:
            assert not flags[k]
            np.testing.assert_array_equal(after[k], before[k])
        else:
            assert "Dense_" in k and flags[k]
            assert not np.allclose(after[k], before[k])


def test_head_scope_touches_only_last_dense():
    # 11 Dense layers: Dense_10 is the head and sorts before Dense_2 as a string.
    params, _ = _net(hidden=(4,) * 10, layer_norm=True)
    mask = pn.perturbation_mask(params, "head")
    xi = pn.sample_xi(jax.random.PRNGKey(2), params, mask)
    before, after, flags = _flat(params), _flat(pn.perturb(params, xi, 0.1, mask)), _flat(mask)
    changed = sorted(k for k in before if not np.array_equal(after[k], before[k]))
    assert changed == ["['params']['Dense_10']['bias']", "['params']['Dense_10']['kernel']"]
    assert sorted(k for k, f in flags.items() if f) == changed


@pytest.mark.slow
def test_perturbation_std_is_sigma():
    params, _ = _net(hidden=(256, 256), layer_norm=True)
    mask = pn.perturbation_mask(params, "all_dense")
    sigma = 0.037
    xi = pn.sample_xi(jax.random.PRNGKey(3), params, mask)
    diff = jax.tree.map(lambda a, b: b - a, params, pn.perturb(params, xi, sigma, mask))
    masked = [d.ravel() for d, m in zip(jax.tree.leaves(diff), jax.tree.leaves(mask), strict=True) if m]
    assert abs(float(jnp.std(jnp.concatenate(masked))) / sigma - 1.0) < 0.05
    # unmasked leaves hold no noise at all: a scalar zero (orbax cannot checkpoint zero-size arrays)
    assert all(x.shape == () and float(x) == 0 for x, m in zip(jax.tree.leaves(xi), jax.tree.leaves(mask), strict=True) if not m)


def test_net_option_follows_layer_norm_flag():
    assert pn.make(_cfg(), NUM_ACTIONS).net == {"layer_norm": True}
    assert pn.make(_cfg(layer_norm=False), NUM_ACTIONS).net == {"layer_norm": False}
    assert exploration.make(_cfg(), NUM_ACTIONS).adapt_every == 50
    assert pn.make(_cfg(adaptive=False), NUM_ACTIONS).adapt_every == 0


# --- adaptation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["kl", "disagree"])
@pytest.mark.slow
def test_adapt_moves_sigma_towards_delta_and_clips(distance):
    params, q_apply = _net()
    obs = _obs(64)
    key = jax.random.PRNGKey(4)
    alpha, sigma0 = 1.5, 0.5

    def adapted(delta, **kw):
        s = pn.make(_cfg(distance=distance, delta=delta, alpha=alpha, sigma0=sigma0, **kw), NUM_ACTIONS)
        return _adapt(s, s.init(key, params, 4), key, q_apply, params, obs)

    # σ=0.5 on a 16-16 net moves the policy measurably; δ=1e-9 is below that, δ=1e9 above anything.
    small = adapted(1e-9)
    assert float(small.dist) > 1e-9
    np.testing.assert_allclose(float(small.sigma), sigma0 / alpha, rtol=1e-6)
    assert float(small.delta) == pytest.approx(1e-9)
    np.testing.assert_allclose(float(adapted(1e9).sigma), sigma0 * alpha, rtol=1e-6)
    # clipping at both ends
    assert float(adapted(1e9, sigma_max=0.6).sigma) == pytest.approx(0.6)
    assert float(adapted(1e-9, sigma_min=0.45).sigma) == pytest.approx(0.45)


def test_adapt_compares_the_running_mean_of_d_with_delta():
    params, q_apply = _net()
    obs, key = _obs(64), jax.random.PRNGKey(4)

    def after(smoothing, dist_avg):
        s = pn.make(_cfg(delta=1.0, alpha=2.0, sigma0=0.5, smoothing=smoothing), NUM_ACTIONS)
        state = s.init(key, params, 4)._replace(dist_avg=jnp.float32(dist_avg))
        return _adapt(s, state, key, q_apply, params, obs)

    # The first adaptation has no history: the average is d itself, whatever the smoothing.
    fresh = after(0.9, -1.0)
    assert float(fresh.dist_avg) == pytest.approx(float(fresh.dist))
    # d on this net at σ=0.5 is below δ=1; a history of large distances still holds the mean above δ...
    assert float(fresh.dist) < 1.0
    held = after(0.9, 100.0)
    np.testing.assert_allclose(float(held.dist_avg), 0.9 * 100.0 + 0.1 * float(held.dist), rtol=1e-5)
    assert float(held.sigma) == pytest.approx(0.25)
    # ...while smoothing=0 (the paper's single-sample rule) looks at this d only.
    assert float(after(0.0, 100.0).sigma) == pytest.approx(1.0)


@pytest.mark.slow
def test_derived_delta_follows_eps_schedule():
    params, q_apply = _net()
    s = pn.make(_cfg(distance="kl"), NUM_ACTIONS)
    key = jax.random.PRNGKey(5)
    step = jnp.int32(HP.eps_decay_steps // 2)
    state = _adapt(s, s.init(key, params, 2), key, q_apply, params, _obs(8), step)
    eps = float(exploration.linear_epsilon(step, HP))
    np.testing.assert_allclose(float(state.delta), -np.log(1 - eps + eps / NUM_ACTIONS), rtol=1e-5)
    _, _, metrics = _act(s, state, key, q_apply, params, _obs(2), step)
    np.testing.assert_allclose(float(metrics["delta"]), float(state.delta), rtol=1e-6)


# --- per-env episodes -------------------------------------------------------------------------------


def test_observe_resamples_only_done_envs():
    params, q_apply = _net()
    s = pn.make(_cfg(sigma0=0.01, delta=1e9, alpha=2.0), NUM_ACTIONS)
    key = jax.random.PRNGKey(6)
    state = s.init(key, params, 4)
    state = _adapt(s, state, key, q_apply, params, _obs(8))  # σ: 0.01 -> 0.02
    assert float(state.sigma) == pytest.approx(0.02)
    new = jax.jit(s.observe)(state, jax.random.PRNGKey(7), params, jnp.array([True, False, True, False]))
    k = "Dense_0"
    old_xi, new_xi = state.xi["params"][k]["kernel"], new.xi["params"][k]["kernel"]
    for i, done in enumerate([True, False, True, False]):
        assert np.array_equal(old_xi[i], new_xi[i]) != done
    assert not np.array_equal(new_xi[0], new_xi[2])  # the two finished envs got different ξ
    np.testing.assert_allclose(np.asarray(new.env_sigma), [0.02, 0.01, 0.02, 0.01], rtol=1e-6)
    # nothing done: nothing changes
    same = jax.jit(s.observe)(new, jax.random.PRNGKey(8), params, jnp.zeros(4, bool))
    for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(new), strict=True):
        np.testing.assert_array_equal(a, b)


# --- acting -----------------------------------------------------------------------------------------


def test_act_is_argmax_of_each_envs_perturbed_network():
    params, q_apply = _net()
    s = pn.make(_cfg(eps_floor=0.0, sigma0=1.0), NUM_ACTIONS)
    n = 8
    state = s.init(jax.random.PRNGKey(9), params, n)
    obs = _obs(n)
    actions, _, _ = _act(s, state, jax.random.PRNGKey(10), q_apply, params, obs)
    mask = pn.perturbation_mask(params, "all_dense")
    for i in range(n):
        xi_i = jax.tree.map(lambda x, i=i: x[i], state.xi)
        q = q_apply(pn.perturb(params, xi_i, state.env_sigma[i], mask), obs[i : i + 1])
        assert int(actions[i]) == int(jnp.argmax(q[0]))
    assert actions.dtype == jnp.int32


def test_frac_differs_is_the_disagreement_measured_at_adaptation():
    params, q_apply = _net()
    obs, key = _obs(64), jax.random.PRNGKey(11)

    def frac(sigma, distance="kl"):
        s = pn.make(_cfg(eps_floor=0.0, sigma0=sigma, sigma_min=min(sigma, 1e-4), distance=distance), NUM_ACTIONS)
        state = _adapt(s, s.init(key, params, 4), jax.random.PRNGKey(12), q_apply, params, obs)
        _, _, m = _act(s, state, jax.random.PRNGKey(13), q_apply, params, obs[:4])
        assert float(m["frac_differs"]) == float(state.differs)
        return state

    assert float(frac(1e-8).differs) == 0.0
    assert float(frac(10.0).differs) > 0.2
    # With the disagreement distance the metric is d itself: the same two Q batches feed both.
    state = frac(0.5, distance="disagree")
    assert float(state.differs) == pytest.approx(float(state.dist))


def test_eps_floor_one_is_uniform():
    params, q_apply = _net()
    s = pn.make(_cfg(eps_floor=1.0, sigma0=1e-4), NUM_ACTIONS)
    n = 6000
    state = s.init(jax.random.PRNGKey(13), params, n)
    obs = jnp.zeros((n, OBS_DIM))  # every env would pick the same greedy action
    actions, _, _ = _act(s, state, jax.random.PRNGKey(14), q_apply, params, obs)
    counts = np.bincount(np.asarray(actions), minlength=NUM_ACTIONS) / n
    np.testing.assert_allclose(counts, 1.0 / NUM_ACTIONS, atol=0.03)


# --- under jit(vmap) over seeds ---------------------------------------------------------------------


@pytest.mark.slow
def test_jit_vmap_over_seeds_with_shared_step():
    seeds, n = 3, 4
    net = MLP(hidden=(16, 16), num_actions=NUM_ACTIONS, layer_norm=True)
    q_apply = lambda p, o, k=None: net.apply(p, o)  # noqa: E731
    s = pn.make(_cfg(distance="disagree", eps_floor=0.1), NUM_ACTIONS)
    keys = jax.random.split(jax.random.PRNGKey(15), seeds)
    params = jax.vmap(lambda k: net.init(k, jnp.zeros((1, OBS_DIM))))(keys)
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (seeds,)), HP)
    obs = jax.random.normal(jax.random.PRNGKey(16), (seeds, n, OBS_DIM))
    done = jnp.array([[True, False, False, False], [False, False, False, False], [True, True, True, True]])

    def one_seed(key, params, obs, done, hp, step):
        k_init, k_act, k_obs, k_adapt = jax.random.split(key, 4)
        state = s.init(k_init, params, n)
        actions, state, metrics = s.act(state, k_act, q_apply, params, obs, step, hp)
        after = s.observe(state, k_obs, params, done)
        adapted = s.adapt(after, k_adapt, q_apply, params, obs, step, hp)
        return actions, metrics, state, after, adapted

    run = jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, 0, 0, None)))
    actions, metrics, state, after, adapted = run(keys, params, obs, done, hp, jnp.int32(1000))
    assert actions.shape == (seeds, n) and actions.dtype == jnp.int32
    assert set(metrics) == {"sigma", "dist", "delta", "frac_differs"}
    assert all(v.shape == (seeds,) for v in metrics.values())
    changed = np.asarray(state.xi["params"]["Dense_0"]["kernel"] != after.xi["params"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(changed.any(axis=(2, 3)), np.asarray(done))
    assert not np.array_equal(state.xi["params"]["Dense_0"]["kernel"][0], state.xi["params"]["Dense_0"]["kernel"][1])
    eps = float(exploration.linear_epsilon(1000, HP))
    np.testing.assert_allclose(np.asarray(adapted.delta), eps * (1 - 1 / NUM_ACTIONS), rtol=1e-5)
    assert np.all(np.asarray(adapted.sigma) != np.asarray(after.sigma))
    # same seed, same run
    again = run(keys, params, obs, done, hp, jnp.int32(1000))
    np.testing.assert_array_equal(again[0], actions)


# --- form flipout -------------------------------------------------------------------------------------


def _flipout_xi(flip, i):
    """Env i's ξ_i = diag(s_i)·Ξ·diag(r_i) on each perturbed Dense, built explicitly."""

    def module(noise, signs):
        if "kernel" not in noise or signs["kernel"].ndim == 0:  # LayerNorm, or a Dense outside the scope
            return noise
        s, r = signs["kernel"][i], signs["bias"][i]
        return {"kernel": noise["kernel"] * s[:, None] * r, "bias": noise["bias"] * r}

    return {"params": {k: module(v, flip.signs["params"][k]) for k, v in flip.noise["params"].items()}}


@pytest.mark.parametrize("scope", ["all_dense", "head"])
@pytest.mark.slow
def test_flipout_act_equals_explicit_perturbed_networks(scope):
    params, q_apply = _net()
    s = pn.make(_cfg(eps_floor=0.0, sigma0=0.7, form="flipout", scope=scope), NUM_ACTIONS)
    n = 6
    state = s.init(jax.random.PRNGKey(21), params, n)
    state = state._replace(env_sigma=jnp.linspace(0.1, 1.0, n))
    obs = _obs(n)
    actions = jax.jit(lambda st, o: s.act(st, jax.random.PRNGKey(0), q_apply, params, o, 0, HP)[0])(state, obs)
    # the perturbed Q-values themselves, through the interceptor
    with pn.nn.intercept_methods(pn.flipout_interceptor(state.xi, state.env_sigma)):
        q_flip = q_apply(params, obs)
    mask = pn.perturbation_mask(params, scope)
    for i in range(n):
        explicit = q_apply(pn.perturb(params, _flipout_xi(state.xi, i), state.env_sigma[i], mask), obs[i : i + 1])[0]
        assert int(actions[i]) == int(jnp.argmax(explicit))
        np.testing.assert_allclose(np.asarray(q_flip[i]), np.asarray(explicit), rtol=1e-5, atol=1e-5)


def test_flipout_outputs_match_exact_form_in_mean_and_covariance():
    """Perturbed Q-values of one fixed state over many seeds × envs: flipout and the exact form agree in mean and
    covariance (exact: independent ξ per env; flipout: one Ξ per seed, signs per env)."""
    params, q_apply = _net(layer_norm=False)
    seeds, n, sigma = 64, 64, 0.3
    obs = jnp.tile(_obs(1, seed=5), (n, 1))

    def outputs(form):
        s = pn.make(_cfg(eps_floor=0.0, sigma0=sigma, form=form), NUM_ACTIONS)

        def one_seed(key):
            state = s.init(key, params, n)
            if form == "flipout":
                with pn.nn.intercept_methods(pn.flipout_interceptor(state.xi, state.env_sigma)):
                    return q_apply(params, obs)
            mask = pn.perturbation_mask(params, "all_dense")
            return jax.vmap(lambda x, o: q_apply(pn.perturb(params, x, sigma, mask), o[None])[0])(state.xi, obs)

        q = jax.jit(jax.vmap(one_seed))(jax.random.split(jax.random.PRNGKey(31), seeds))
        return np.asarray(q).reshape(-1, NUM_ACTIONS)

    exact, flip = outputs("exact"), outputs("flipout")
    se = exact.std(0) / np.sqrt(len(exact))
    np.testing.assert_array_less(np.abs(flip.mean(0) - exact.mean(0)), 5 * np.sqrt(2) * se)
    np.testing.assert_allclose(np.cov(flip.T), np.cov(exact.T), rtol=0.15, atol=0.05 * np.abs(np.cov(exact.T)).max())


def test_flipout_observe_redraws_signs_of_done_envs_only():
    params, _ = _net()
    s = pn.make(_cfg(form="flipout"), NUM_ACTIONS)
    state = s.init(jax.random.PRNGKey(41), params, 4)
    done = jnp.array([True, False, True, False])
    new = jax.jit(s.observe)(state, jax.random.PRNGKey(42), params, done)
    np.testing.assert_array_equal(new.xi.noise["params"]["Dense_0"]["kernel"], state.xi.noise["params"]["Dense_0"]["kernel"])
    for leaf in ("kernel", "bias"):
        old, fresh = state.xi.signs["params"]["Dense_1"][leaf], new.xi.signs["params"]["Dense_1"][leaf]
        assert set(np.unique(np.asarray(fresh))) == {-1.0, 1.0}
        for i in (1, 3):
            np.testing.assert_array_equal(old[i], fresh[i])
        assert not np.array_equal(old[0], fresh[0]) and not np.array_equal(old[2], fresh[2])
