"""NoisyNets: the factorised NoisyDense layer, the noisy MLP and the `--noise noisy` strategy."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx import exploration
from rlx.agents import dqn
from rlx.agents.core import hparams
from rlx.nets import MLP, NoisyDense, f_scale, greedy


def _layer(p=6, q=5, sigma0=0.5, seed=0):
    layer = NoisyDense(q, sigma0=sigma0)
    return layer, layer.init(jax.random.PRNGKey(seed), jnp.zeros((1, p)))


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def test_f_scale():
    np.testing.assert_allclose(np.asarray(f_scale(jnp.array([-4.0, 0.0, 2.25]))), [-2.0, 0.0, 1.5])


def test_noise_off_equals_dense_with_mu():
    layer, params = _layer()
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 6))
    mu = {"params": {k: params["params"][k] for k in ("kernel", "bias")}}
    expected = nn.Dense(5).apply(mu, x)
    np.testing.assert_allclose(np.asarray(layer.apply(params, x)), np.asarray(expected), rtol=1e-6, atol=1e-6)
    # and the noise is not silently off: with a noise key the output moves away from μ
    noisy = layer.apply(params, x, rngs={"noise": jax.random.PRNGKey(2)})
    assert float(jnp.max(jnp.abs(noisy - expected))) > 1e-3


def test_init_ranges():
    p, sigma0 = 50, 0.7
    _, params = _layer(p=p, q=40, sigma0=sigma0)
    w = params["params"]
    bound = 1.0 / math.sqrt(p)
    for name in ("kernel", "bias"):
        mu = np.asarray(w[name])
        assert np.abs(mu).max() <= bound
        assert np.abs(mu).max() > 0.8 * bound  # uniform over the whole range, not a narrower one
    for name in ("sigma_kernel", "sigma_bias"):
        np.testing.assert_allclose(np.asarray(w[name]), sigma0 / math.sqrt(p), rtol=1e-6)


def _effective_noise(p, q, keys):
    """ε_w and ε_b the layer actually used, read off by probing with μ = 0, σ = 1."""
    layer, params = _layer(p, q)
    params = jax.tree.map(jnp.zeros_like, params)
    params["params"]["sigma_kernel"] = jnp.ones((p, q))
    params["params"]["sigma_bias"] = jnp.ones((q,))
    x = jnp.concatenate([jnp.zeros((1, p)), jnp.eye(p)])  # row 0 gives ε_b, row 1 + i gives ε_w[i] + ε_b
    y = jax.vmap(lambda k: layer.apply(params, x, rngs={"noise": k}))(keys)
    eps_b = y[:, 0]
    return y[:, 1:] - eps_b[:, None, :], eps_b


@pytest.mark.slow
def test_factorised_weight_noise_statistics():
    p, q = 16, 12
    eps_w, eps_b = _effective_noise(p, q, jax.random.split(jax.random.PRNGKey(0), 2000))
    eps_w, eps_b = np.asarray(eps_w), np.asarray(eps_b)
    # E[f(a)² f(b)²] = E|a| E|b| = 2/π for independent standard normals a, b
    assert abs(eps_w.var() / (2 / math.pi) - 1) < 0.03
    assert abs(eps_w.mean()) < 0.01
    # E[f(a)²] = E|a| = √(2/π) for the bias noise
    assert abs(eps_b.var() / math.sqrt(2 / math.pi) - 1) < 0.05
    # factorised: ε_w = f(ε_in) f(ε_out)ᵀ with ε_b = f(ε_out), so every row of ε_w is a multiple of ε_b
    ratio = eps_w / eps_b[:, None, :]
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :, :1], ratio.shape), rtol=1e-3, atol=1e-4)


def _sown_noise(net, params, obs, key):
    _, state = net.apply(params, obs, rngs={"noise": key}, mutable=["intermediates"])
    # Module entries only (the MLP also sows its hidden activations, "h<i>", for the diagnostics).
    return {layer: {k: v[0] for k, v in d.items()} for layer, d in state["intermediates"].items() if isinstance(d, dict)}


@pytest.mark.slow
def test_layers_draw_independent_noise():
    # equal layer shapes (32 -> 32 -> 32), so a shared key would give identical ε in both layers
    net = MLP((32, 32), 32, noisy=True)
    obs = jnp.ones((1, 32))
    params = net.init(jax.random.PRNGKey(0), obs)
    noise = jax.vmap(lambda k: _sown_noise(net, params, obs, k))(jax.random.split(jax.random.PRNGKey(1), 200))
    assert set(noise) == {"NoisyDense_0", "NoisyDense_1", "NoisyDense_2"}
    l0, l1 = noise["NoisyDense_0"], noise["NoisyDense_1"]
    pairs = [(l0["eps_in"], l1["eps_in"]), (l0["eps_out"], l1["eps_out"]), (l0["eps_in"], l0["eps_out"])]
    for a, b in pairs:
        assert abs(_corr(a, b)) < 0.05  # 6400 pairs: standard error ~0.0125
    # the sown noise is what the layer used: identical to an independent apply with the same key
    same = _sown_noise(net, params, obs, jax.random.split(jax.random.PRNGKey(1), 200)[3])
    np.testing.assert_array_equal(np.asarray(same["NoisyDense_0"]["eps_in"]), np.asarray(l0["eps_in"][3]))


def test_fresh_noise_per_key_same_key_same_output():
    net = MLP((16,), 4, noisy=True)
    obs = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
    params = net.init(jax.random.PRNGKey(1), obs)
    k1, k2 = jax.random.split(jax.random.PRNGKey(2))
    a = net.apply(params, obs, rngs={"noise": k1})
    np.testing.assert_array_equal(np.asarray(a), np.asarray(net.apply(params, obs, rngs={"noise": k1})))
    assert float(jnp.max(jnp.abs(a - net.apply(params, obs, rngs={"noise": k2})))) > 1e-3
    assert float(jnp.max(jnp.abs(a - net.apply(params, obs)))) > 1e-3


@pytest.mark.slow
def test_noisy_mlp_replaces_every_dense_and_plain_names_stay():
    obs = jnp.zeros((1, 5))
    noisy = MLP((8, 8), 3, layer_norm=True, noisy=True).init(jax.random.PRNGKey(0), obs)["params"]
    assert set(noisy) == {"NoisyDense_0", "NoisyDense_1", "NoisyDense_2", "LayerNorm_0", "LayerNorm_1"}
    plain = MLP((8, 8), 3, layer_norm=True).init(jax.random.PRNGKey(0), obs)["params"]
    assert set(plain) == {"Dense_0", "Dense_1", "Dense_2", "LayerNorm_0", "LayerNorm_1"}


def _strategy_setup(sigma0, num_envs=16, seeds=8, num_actions=4):
    cfg = C.apply_overrides(C.Config(), {"noise": "noisy", "noisy.sigma0": sigma0})
    strat = exploration.make(cfg, num_actions)
    net = MLP((32,), num_actions, **dict(strat.net))

    def q_apply(p, o, k=None):
        return net.apply(p, o, rngs=None if k is None else {"noise": k})

    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    obs = jax.random.normal(jax.random.PRNGKey(1), (seeds, num_envs, 6))
    params = jax.vmap(net.init)(keys, obs)
    hp = hparams(cfg)

    def act(params, obs, key, step):
        state = strat.init(key, params, num_envs)
        return strat.act(state, key, q_apply, params, obs, step, hp)

    run = jax.jit(jax.vmap(act, in_axes=(0, 0, 0, None)))
    return strat, q_apply, params, obs, run


def test_strategy_contract():
    strat = exploration.make(C.Config(noise="noisy", noisy=C.NoisyConfig(sigma0=0.3)), 3)
    assert dict(strat.net) == {"noisy": True, "noisy_sigma0": 0.3}
    assert strat.train_noise and strat.adapt_every == 0


@pytest.mark.slow
def test_large_sigma_explores_with_fresh_keys():
    seeds, num_envs = 8, 16
    _, _, params, obs, run = _strategy_setup(sigma0=20.0, num_envs=num_envs, seeds=seeds)
    a1, _, m1 = run(params, obs, jax.random.split(jax.random.PRNGKey(5), seeds), jnp.int32(100))
    a2, _, m2 = run(params, obs, jax.random.split(jax.random.PRNGKey(6), seeds), jnp.int32(100))
    assert a1.shape == (seeds, num_envs) and a1.dtype == jnp.int32
    assert bool(jnp.any(a1 != a2))
    assert m1["frac_differs"].shape == (seeds,)
    assert float(jnp.mean(m1["frac_differs"])) > 0.2


def test_tiny_sigma_acts_mu_greedy():
    seeds = 8
    _, q_apply, params, obs, run = _strategy_setup(sigma0=1e-6, seeds=seeds)
    a, _, m = run(params, obs, jax.random.split(jax.random.PRNGKey(5), seeds), jnp.int32(0))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(greedy(jax.vmap(q_apply)(params, obs))))
    np.testing.assert_array_equal(np.asarray(m["frac_differs"]), 0.0)


@pytest.mark.slow
def test_noisy_td_loss_has_finite_gradients_that_reach_sigma():
    net = MLP((16, 16), 2, noisy=True)

    def q_apply(p, o, k=None):
        return net.apply(p, o, rngs=None if k is None else {"noise": k})

    obs = jax.random.normal(jax.random.PRNGKey(0), (32, 4))
    batch = dict(
        obs=obs,
        next_obs=obs + 0.1,
        action=jax.random.randint(jax.random.PRNGKey(1), (32,), 0, 2),
        reward=jnp.ones((32,)),
        terminated=jnp.zeros((32,), bool),
    )
    params = net.init(jax.random.PRNGKey(2), obs)
    target = net.init(jax.random.PRNGKey(3), obs)

    def grads(key):
        return jax.jit(jax.grad(lambda p: dqn.q_loss(p, target, batch, 0.99, q_apply, key=key)[0]))(params)

    g = grads(jax.random.PRNGKey(4))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))
    for layer in ("NoisyDense_0", "NoisyDense_1", "NoisyDense_2"):
        assert float(jnp.abs(g["params"][layer]["sigma_kernel"]).sum()) > 0  # σ learns only through noise
    # without a key the loss uses μ only, so σ gets no gradient at all
    g0 = grads(None)
    assert float(jnp.abs(g0["params"]["NoisyDense_2"]["sigma_kernel"]).sum()) == 0.0
