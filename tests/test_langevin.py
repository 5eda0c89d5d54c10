import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlx import config as C
from rlx import exploration
from rlx.exploration.langevin import NaturalLangevinState, fisher_estimate, natural_langevin

# Gradients of very different magnitudes (one below sqrt(damping)'s scale would be swamped; 1e-3 is not).
G = jnp.array([1e-3, 2e-2, 0.3, 1.0, 7.0, 50.0], jnp.float32)
DAMPING = 1e-8


def _warm_state(tx, params, grads, steps, eta):
    """The transform's state after `steps` updates with the same grads."""
    state = tx.init(params)
    for i in range(steps):
        _, state = tx.update(grads, state, params, eta=eta, key=jax.random.PRNGKey(1000 + i))
    return state


@pytest.mark.parametrize("beta, eta", [(1e4, 2.5e-4), (10.0, 1e-2)])
def test_langevin_noise_has_the_intended_covariance_on_a_diagonal_problem(beta, eta):
    decay = 0.9
    tx = natural_langevin(optax.identity(), beta, decay=decay, damping=DAMPING)
    params = jnp.zeros_like(G)
    # Few warm-up steps: without the bias correction F̂ would be (1 - 0.9**5) g² = 0.41 g².
    state = _warm_state(tx, params, G, 5, eta)

    def param_noise(key):
        updates, _ = tx.update(G, state, params, eta=eta, key=key)
        return -eta * (updates - G)  # identity inner: updates - G is the noise in update space

    x = np.asarray(jax.jit(jax.vmap(param_noise))(jax.random.split(jax.random.PRNGKey(0), 20_000)), np.float64)
    cov = np.cov(x, rowvar=False)
    want = 2.0 * eta / beta / (np.asarray(G, np.float64) ** 2 + DAMPING)
    np.testing.assert_allclose(np.diag(cov), want, rtol=0.05)
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.max(np.abs(corr - np.eye(len(G)))) < 0.04
    assert np.max(np.abs(x.mean(0)) / np.sqrt(want)) < 0.04  # zero mean


def test_fisher_is_bias_corrected_from_the_first_update():
    decay = 0.99
    tx = natural_langevin(optax.identity(), 1e4, decay=decay)
    params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
    g1 = {"w": jnp.array([0.5, -2.0, 3.0]), "b": jnp.array([1e-2, -4.0])}
    g2 = {"w": jnp.array([1.0, 1.0, -1.0]), "b": jnp.array([2.0, 0.0])}
    state = tx.init(params)
    assert isinstance(state, NaturalLangevinState)
    _, state = tx.update(g1, state, params, eta=1e-3, key=jax.random.PRNGKey(0))
    assert int(state.count) == 1
    f_hat = fisher_estimate(state, decay)
    for k in params:
        np.testing.assert_allclose(f_hat[k], g1[k] ** 2, rtol=1e-5)
        np.testing.assert_allclose(state.fisher[k], (1 - decay) * g1[k] ** 2, rtol=1e-5)
    _, state = tx.update(g2, state, params, eta=1e-3, key=jax.random.PRNGKey(1))
    f_hat = fisher_estimate(state, decay)
    for k in params:
        want = (decay * (1 - decay) * g1[k] ** 2 + (1 - decay) * g2[k] ** 2) / (1 - decay**2)
        np.testing.assert_allclose(f_hat[k], want, rtol=1e-5)


def test_inner_transform_is_applied_and_keys_decide_the_noise():
    # A huge beta makes the noise negligible, so the updates are the inner transform's (scale by 3).
    quiet = natural_langevin(optax.scale(3.0), 1e30)
    grads = {"a": jnp.ones(4), "b": jnp.ones(4)}
    u, _ = quiet.update(grads, quiet.init(grads), grads, eta=1e-3, key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(u["a"], 3.0, rtol=1e-6)
    _, s = quiet.update(grads, quiet.init(grads), grads, eta=1e-3, key=jax.random.PRNGKey(0))
    np.testing.assert_allclose(fisher_estimate(s, 0.99)["a"], 1.0, rtol=1e-5)  # raw grads², not inner's 9

    tx = natural_langevin(optax.identity(), 1.0)
    state = tx.init(grads)
    u1, _ = tx.update(grads, state, grads, eta=1e-3, key=jax.random.PRNGKey(0))
    u1b, _ = tx.update(grads, state, grads, eta=1e-3, key=jax.random.PRNGKey(0))
    u2, _ = tx.update(grads, state, grads, eta=1e-3, key=jax.random.PRNGKey(1))
    np.testing.assert_array_equal(u1["a"], u1b["a"])
    assert not np.allclose(u1["a"], u2["a"])
    assert not np.allclose(u1["a"], u1["b"])  # each leaf draws its own noise


def test_works_under_jit_vmap_with_per_seed_eta_and_key():
    beta, g, n = 100.0, 0.5, 20_000
    tx = natural_langevin(optax.identity(), beta)
    etas = jnp.array([1e-4, 1e-2, 1.0])
    seeds = len(etas)
    params = {"w": jnp.zeros((seeds, n))}
    grads = {"w": jnp.full((seeds, n), g)}
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)

    @jax.jit
    @jax.vmap
    def step(params, grads, state, eta, key):
        updates, state = tx.update(grads, state, params, eta=eta, key=key)
        return jax.tree.map(lambda p, u: p - eta * u, params, updates), state

    state = jax.vmap(tx.init)(params)
    new_params, state = step(params, grads, state, etas, keys)
    assert state.count.shape == (seeds,)
    noise = np.asarray(new_params["w"]) + np.asarray(etas)[:, None] * g  # remove the gradient step
    std = noise.std(axis=1)
    np.testing.assert_allclose(std, np.sqrt(2 * np.asarray(etas) / beta) / g, rtol=0.03)
    normalised = noise / std[:, None]
    assert not np.allclose(normalised[0], normalised[1], atol=1e-3)  # per-seed keys give different noise


def test_zero_learning_rate_gives_no_noise_and_no_nan():
    tx = natural_langevin(optax.identity(), 1e4)
    g = jnp.array([1.0, 0.0, 2.0])  # includes an exactly-zero gradient (noise capped by the damping)
    u, _ = jax.jit(lambda s, eta: tx.update(g, s, g, eta=eta, key=jax.random.PRNGKey(0)))(tx.init(g), 0.0)
    np.testing.assert_array_equal(u, g)


def test_langevin_strategy_is_greedy_and_wraps_the_optimizer():
    lg = C.LangevinConfig(beta=123.0, decay=0.5, damping=1e-3)
    cfg = dataclasses.replace(C.Config(noise="langevin"), langevin=lg)
    strategy = exploration.make(cfg, 3)
    assert exploration.make(C.Config(noise="eps"), 3).optimizer is None

    w = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
    obs = jax.random.normal(jax.random.PRNGKey(1), (500, 5))

    def q_apply(params, obs, key=None):
        return obs @ params

    class HP:  # ε = 1 throughout: an ε-greedy act would be mostly random
        eps_start, eps_end, eps_decay_steps = 1.0, 1.0, 1.0

    state = strategy.init(jax.random.PRNGKey(2), w, 4)
    actions, _, _ = strategy.act(state, jax.random.PRNGKey(3), q_apply, w, obs, 0, HP)
    np.testing.assert_array_equal(actions, jnp.argmax(obs @ w, axis=-1))

    # The wrapped transform uses cfg.langevin's beta, decay and damping.
    tx = strategy.optimizer(optax.identity())
    ref = natural_langevin(optax.identity(), lg.beta, lg.decay, lg.damping)
    g = jnp.array([0.0, 0.1, 1.0])
    u, s = tx.update(g, tx.init(g), g, eta=0.1, key=jax.random.PRNGKey(4))
    u_ref, _ = ref.update(g, ref.init(g), g, eta=0.1, key=jax.random.PRNGKey(4))
    assert isinstance(s, NaturalLangevinState)
    np.testing.assert_allclose(u, u_ref, rtol=1e-6)
    default = natural_langevin(optax.identity(), C.LangevinConfig().beta)
    u_default, _ = default.update(g, default.init(g), g, eta=0.1, key=jax.random.PRNGKey(4))
    assert not np.allclose(u, u_default)
