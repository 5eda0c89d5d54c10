"""Adaptive parameter-space noise for DQN (Plappert et al. 2018, "Parameter Space Noise for Exploration").

Each env acts greedily (plus an optional ε floor) with its own perturbed copy θ̃_i = θ + σ_i·ξ_i of the
Q-network, where ξ_i ~ N(0, I) on the Dense kernels and biases and both ξ_i and σ_i are drawn when that
env's episode starts. Every `adapt_every` env steps σ moves by a factor α towards the target distance δ
between the clean and a freshly perturbed policy on a replay batch. Only the clean θ is trained.

`param.form` chooses how each env's ξ_i is made. `exact`: an independent Gaussian draw per env and episode.
`flipout` (Wen et al. 2018, "Flipout: efficient pseudo-independent weight perturbations"): one Gaussian Ξ per
seed, drawn once, and per env and episode random signs s_i (inputs) and r_i (outputs) of every perturbed Dense,
ξ_i = diag(s_i)·Ξ·diag(r_i). Each ξ_i is still N(0, I) and an episode's perturbation stays fixed, but acting needs
no per-env weight copy — x·W̃_i = x·W + σ_i·((x ⊙ s_i)·Ξ) ⊙ r_i is two ordinary matmuls for all envs — and a new
episode draws only fan_in + fan_out signs per layer instead of a network's worth of Gaussians.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlx.exploration.base import Strategy, eps_greedy_actions, linear_epsilon
from rlx.nets import greedy

_DENSE = re.compile(r"Dense_(\d+)$")
_PERTURBED_LEAVES = ("kernel", "bias")


class ParamNoiseState(NamedTuple):
    """Per-seed exploration state; leaves of `xi` (form exact) and `env_sigma` have a leading axis of num_envs."""

    xi: Any  # exact: each env's ξ_i, shaped like params on perturbed leaves (other leaves: a scalar 0); flipout: Flipout
    env_sigma: jax.Array  # σ_i, frozen when env i's episode started
    sigma: jax.Array  # the adaptive σ that the next episode to start will use
    dist: jax.Array  # distance d measured at the last adaptation (0 before the first)
    dist_avg: jax.Array  # running mean of d that the adaptation compares with δ (-1 before the first)
    delta: jax.Array  # target δ used at the last adaptation (0 before the first)
    differs: jax.Array  # fraction of the last adaptation's batch whose greedy action its perturbation changed


class Flipout(NamedTuple):
    """The `xi` of form flipout: env i's ξ_i is diag(s_i)·noise·diag(r_i) on each perturbed Dense."""

    noise: Any  # Ξ, one Gaussian draw shaped like params on perturbed leaves (sample_xi), shared by the envs
    signs: Any  # ±1 per env: (num_envs, fan_in) s_i on a perturbed kernel's leaf, (num_envs, fan_out) r_i on its bias's


def _key_name(entry) -> str:
    return str(getattr(entry, "key", getattr(entry, "name", entry)))


def perturbation_mask(params, scope: str = "all_dense"):
    """Pytree of Python bools like params: True on Dense kernels/biases (all of them, or the last for scope="head")."""

    def dense_index(path):
        # A leaf is perturbed when it is a kernel or bias whose module is Dense_<i>; LayerNorm scale/bias
        # and conv weights never are.
        if len(path) < 2 or _key_name(path[-1]) not in _PERTURBED_LEAVES:
            return None
        m = _DENSE.match(_key_name(path[-2]))
        return None if m is None else (tuple(_key_name(p) for p in path[:-2]), int(m.group(1)))

    paths = [dense_index(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    if scope == "all_dense":
        chosen = {p for p in paths if p is not None}
    elif scope == "head":
        # Dense_10 sorts before Dense_2 as a string, so the head is found by its integer index.
        dense = [p for p in paths if p is not None]
        chosen = {max(dense, key=lambda p: (p[1], p[0]))} if dense else set()
    else:
        raise ValueError(f"scope must be all_dense or head, got {scope!r}")
    flags = [p is not None and p in chosen for p in paths]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), flags)


def _one_draw_per_tree(draw, params, mask, width, place):
    """One draw sliced into the masked leaves of params, a scalar 0 on the others (no memory; orbax cannot save
    zero-size arrays, so they are not empty). draw(total) gives an array whose last axis holds sum of width(p) over
    the masked leaves; place(piece, p) shapes a leaf's slice. One draw, because each jax.random call site compiles
    its own threefry graph (measured 1.4 s to compile 8 per-leaf draws vs 0.3 s for one flat draw on CPU)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    sizes = [width(p) if m else 0 for p, m in zip(leaves, jax.tree_util.tree_leaves(mask), strict=True)]
    flat = draw(sum(sizes))
    out, start = [], 0
    for p, size in zip(leaves, sizes, strict=True):
        out.append(place(flat[..., start : start + size], p) if size else jnp.zeros((), p.dtype))
        start += size
    return jax.tree_util.tree_unflatten(treedef, out)


def sample_xi(key, params, mask):
    """ξ ~ N(0, I) on the masked leaves, shaped like them; unmasked leaves get a scalar 0."""
    draw = lambda n: jax.random.normal(key, (n,), jnp.float32)  # noqa: E731
    return _one_draw_per_tree(draw, params, mask, lambda p: p.size, lambda x, p: x.reshape(p.shape).astype(p.dtype))


def sample_signs(key, params, mask, num_envs: int):
    """Flipout's random signs for num_envs envs: (num_envs, fan_in) on masked kernels, (num_envs, fan_out) on masked
    biases, a scalar 0 elsewhere."""
    draw = lambda n: jax.random.rademacher(key, (num_envs, n), jnp.float32)  # noqa: E731
    fan = lambda p: p.shape[0] if p.ndim == 2 else p.shape[-1]  # noqa: E731
    return _one_draw_per_tree(draw, params, mask, fan, lambda x, p: x)


def _module_leaves(tree, path):
    node = tree["params"]
    for name in path:
        node = node[name]
    return node


def flipout_interceptor(flip: Flipout, env_sigma):
    """A flax method interceptor that adds env i's (row i's) perturbation σ_i·((x_i ⊙ s_i)·Ξ + Ξ_b) ⊙ r_i to the
    output of every perturbed Dense, so one apply on the clean params gives each env's perturbed Q-values."""

    def intercept(next_fun, args, kwargs, context):
        y = next_fun(*args, **kwargs)
        if context.method_name != "__call__" or not isinstance(context.module, nn.Dense):
            return y
        signs = _module_leaves(flip.signs, context.module.path)
        if signs["kernel"].ndim == 0:  # a Dense outside the perturbation scope
            return y
        noise = _module_leaves(flip.noise, context.module.path)
        flipped = (args[0] * signs["kernel"]) @ noise["kernel"] + noise["bias"]
        return y + env_sigma[:, None] * flipped * signs["bias"]

    return intercept


def perturb(params, xi, sigma, mask):
    """θ̃ = θ + σ·ξ on the masked leaves; the others are returned unchanged (their ξ is ignored)."""
    return jax.tree.map(lambda m, p, x: (p + sigma * x).astype(p.dtype) if m else p, mask, params, xi)


def target_delta_kl(eps, num_actions: int):
    """δ = KL(greedy ‖ ε-greedy) = −log(1 − ε + ε/|A|): the KL that ε-greedy exploration would cause."""
    return -jnp.log1p(-eps + eps / num_actions)


def target_delta_disagree(eps, num_actions: int):
    """δ = ε(1 − 1/|A|): the probability that ε-greedy takes a non-greedy action."""
    return eps * (1.0 - 1.0 / num_actions)


def kl_distance(q_clean, q_perturbed):
    """Mean over states of KL(softmax q_clean ‖ softmax q_perturbed); rows are states."""
    # log-softmax keeps large Q-values (and σ near sigma_max) from overflowing exp.
    logp = jax.nn.log_softmax(q_clean, axis=-1)
    logq = jax.nn.log_softmax(q_perturbed, axis=-1)
    return jnp.mean(jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1))


def disagree_distance(q_clean, q_perturbed):
    """Fraction of states whose greedy action differs between the two Q-value batches."""
    return jnp.mean((greedy(q_clean) != greedy(q_perturbed)).astype(jnp.float32))


# param.distance: (distance between clean and perturbed Q-values, target δ from ε)
DISTANCES = {"kl": (kl_distance, target_delta_kl), "disagree": (disagree_distance, target_delta_disagree)}
SCOPES = ("all_dense", "head")  # param.scope: which Dense layers are perturbed
FORMS = ("exact", "flipout")  # param.form: how each env's ξ_i is drawn (see the module docstring)


def make(cfg, num_actions: int) -> Strategy:
    """Adaptive parameter-space noise configured by cfg.param, for an env with num_actions actions."""
    p = cfg.param
    scope, eps_floor, alpha, smoothing = p.scope, p.eps_floor, p.alpha, p.smoothing
    distance, delta_of_eps = DISTANCES[p.distance]

    def target(step, hp):
        if p.delta > 0:
            return jnp.float32(p.delta)
        # Same ε schedule as the ε-greedy baseline, so both explore "as much" at every step.
        return jnp.asarray(delta_of_eps(linear_epsilon(step, hp), num_actions), jnp.float32)

    flipout = p.form == "flipout"

    def sample_envs(key, params, mask, num_envs):
        if flipout:
            k_noise, k_signs = jax.random.split(key)
            return Flipout(sample_xi(k_noise, params, mask), sample_signs(k_signs, params, mask, num_envs))
        return jax.vmap(lambda k: sample_xi(k, params, mask))(jax.random.split(key, num_envs))

    def perturbed_q(state, q_apply, params, obs):
        if flipout:
            with nn.intercept_methods(flipout_interceptor(state.xi, state.env_sigma)):
                return q_apply(params, obs)
        mask = perturbation_mask(params, scope)

        def q_env(xi, sigma, o):
            return q_apply(perturb(params, xi, sigma, mask), o[None])[0]

        return jax.vmap(q_env)(state.xi, state.env_sigma, obs)

    def init(key, params, num_envs):
        mask = perturbation_mask(params, scope)
        return ParamNoiseState(
            xi=sample_envs(key, params, mask, num_envs),
            env_sigma=jnp.full((num_envs,), p.sigma0, jnp.float32),
            sigma=jnp.float32(p.sigma0),
            dist=jnp.float32(0.0),
            dist_avg=jnp.float32(-1.0),
            delta=jnp.float32(0.0),
            differs=jnp.float32(0.0),
        )

    def act(state, key, q_apply, params, obs, step, hp):
        q_perturbed = perturbed_q(state, q_apply, params, obs)
        actions = eps_greedy_actions(key, q_perturbed, eps_floor) if eps_floor > 0 else greedy(q_perturbed)
        # frac_differs comes from the last adaptation: a clean forward pass at every acting step only to log it
        # cost 14% of an 8-seed CartPole run.
        metrics = {"sigma": state.sigma, "dist": state.dist, "delta": target(step, hp), "frac_differs": state.differs}
        return actions, state, metrics

    def observe(state, key, params, done):
        mask = perturbation_mask(params, scope)
        env_sigma = jnp.where(done, state.sigma, state.env_sigma)
        if flipout:  # fresh signs for every env (cheap: fan_in + fan_out per layer), kept where not done
            fresh = sample_signs(key, params, mask, done.shape[0])
            keep = lambda new, old: jnp.where(done[:, None], new, old) if old.ndim else old  # noqa: E731
            xi = state.xi._replace(signs=jax.tree.map(keep, fresh, state.xi.signs))
            return state._replace(xi=xi, env_sigma=env_sigma)

        # Redrawing every env's ξ and selecting would cost num_envs network-sized draws on every step, though
        # episodes end rarely. A while loop redraws one finished env per iteration; under vmap over seeds it
        # runs max-over-seeds(#done) iterations, none on most steps (measured on CPU, 8 seeds x 10 envs,
        # 120-84 MLP, 2% episode ends: 1.6 ms per act+observe vs 6.0 ms with the redraw-all select).
        def body(c):
            xi, pending = c
            i = jnp.argmax(pending)
            fresh = sample_xi(jax.random.fold_in(key, i), params, mask)
            xi = jax.tree.map(lambda a, x: a.at[i].set(x), xi, fresh)
            return xi, pending.at[i].set(False)

        xi, _ = jax.lax.while_loop(lambda c: jnp.any(c[1]), body, (state.xi, done.astype(bool)))
        return state._replace(xi=xi, env_sigma=env_sigma)

    def adapt(state, key, q_apply, params, obs, step, hp):
        mask = perturbation_mask(params, scope)
        # A fresh ξ (not any env's) measures what the current σ does, independent of episode timing.
        perturbed = perturb(params, sample_xi(key, params, mask), state.sigma, mask)
        q_clean, q_perturbed = q_apply(params, obs), q_apply(perturbed, obs)
        d = distance(q_clean, q_perturbed)
        delta = target(step, hp)
        # The paper compares a single d with δ, which drives the *median* of d to δ. Over perturbations d is
        # right-skewed (one ξ can flip many argmaxes), so its mean then sits well above δ (measured 2.2x on
        # chain-30). Comparing a running mean of d instead makes the mean track δ; smoothing=0 is the paper's rule.
        avg = jnp.where(state.dist_avg < 0, d, smoothing * state.dist_avg + (1.0 - smoothing) * d)
        sigma = jnp.where(avg <= delta, state.sigma * alpha, state.sigma / alpha)
        sigma = jnp.clip(sigma, p.sigma_min, p.sigma_max).astype(jnp.float32)
        return state._replace(
            sigma=sigma,
            dist=d.astype(jnp.float32),
            dist_avg=avg.astype(jnp.float32),
            delta=delta,
            differs=disagree_distance(q_clean, q_perturbed),
        )

    return Strategy(
        init=init,
        act=act,
        observe=observe,
        adapt=adapt,
        adapt_every=p.adapt_every if p.adaptive else 0,
        net={"layer_norm": p.layer_norm},
        train_noise=False,
    )
