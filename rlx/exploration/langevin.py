"""Natural Langevin dynamics (Marceau-Caron & Ollivier, "Natural Langevin Dynamics for Neural Networks").

Each gradient update also moves the parameters by Gaussian noise shaped by a diagonal Fisher estimate F
(a running mean of squared gradients): Δθ = -η·inner(g) + sqrt(2η/β)·F^(-1/2)·ξ with ξ ~ N(0, I), so the
parameters sample around the optimum with covariance ∝ F^(-1)/β instead of settling in it. The strategy
then acts greedily on those noisy parameters (Thompson-style: no ε); all the noise is in the optimizer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlx.exploration.base import Strategy


class NaturalLangevinState(NamedTuple):
    """State of `natural_langevin`: the inner transform's state and the Fisher running mean."""

    inner: Any  # the wrapped transform's state
    fisher: Any  # like params: EMA of squared raw gradients (not bias-corrected; see fisher_estimate)
    count: jax.Array  # int32 number of updates so far


def fisher_estimate(state: NaturalLangevinState, decay: float):
    """The bias-corrected diagonal Fisher F̂ = fisher / (1 - decay**count), a pytree like params.

    Before the first update (count 0) it is all zeros.
    """
    correction = 1.0 - jnp.power(jnp.float32(decay), state.count)
    correction = jnp.where(state.count > 0, correction, 1.0)
    return jax.tree.map(lambda f: f / correction.astype(f.dtype), state.fisher)


def natural_langevin(
    inner: optax.GradientTransformation, beta: float, decay: float = 0.99, damping: float = 1e-8
) -> optax.GradientTransformationExtraArgs:
    """Wrap `inner` (e.g. clipping + Adam scaling, without the learning rate) to add natural Langevin noise.

    `update(grads, state, params=None, *, eta, key, **extra)` returns

        inner_updates + sqrt(2 / (eta·beta)) · (F̂ + damping)^(-1/2) · ξ,     ξ ~ N(0, I) drawn from `key`,

    where F̂ is the bias-corrected running mean of the squared raw `grads` (before `inner`, i.e. before
    clipping), updated with these grads first: fisher ← decay·fisher + (1 - decay)·grads², F̂ = fisher /
    (1 - decay**count). The contract with the caller:

    - the caller applies `params ← params - eta·updates`, so the parameters move by -eta·inner_updates plus
      exactly the Langevin noise sqrt(2·eta/beta)·(F̂ + damping)^(-1/2)·ξ (the sign is irrelevant: ξ is
      symmetric);
    - `eta` is the learning rate actually applied in this step (a traced scalar, per seed under vmap; it may
      decay). At eta = 0 the noise term is 0, so the parameter change stays 0 rather than 0·inf;
    - `key` is a fresh PRNG key for every update (per seed under vmap); each leaf gets its own split of it.

    `extra` (anything but eta and key) is forwarded to `inner`. Works under jit and vmap. With damping = 0 a
    parameter whose gradient has always been exactly 0 gets infinite noise; keep damping > 0.
    """
    inner = optax.with_extra_args_support(inner)

    def init(params):
        fisher = jax.tree.map(jnp.zeros_like, params)
        return NaturalLangevinState(inner.init(params), fisher, jnp.zeros([], jnp.int32))

    def update(grads, state, params=None, *, eta, key, **extra):
        inner_updates, inner_state = inner.update(grads, state.inner, params, **extra)
        fisher = jax.tree.map(lambda f, g: decay * f + (1.0 - decay) * jnp.square(g), state.fisher, grads)
        state = NaturalLangevinState(inner_state, fisher, optax.safe_int32_increment(state.count))
        f_hat = fisher_estimate(state, decay)

        eta = jnp.asarray(eta, jnp.float32)
        positive = eta > 0
        scale = jnp.where(positive, jnp.sqrt(2.0 / (jnp.where(positive, eta, 1.0) * beta)), 0.0)

        leaves, treedef = jax.tree.flatten(f_hat)
        keys = jax.random.split(key, max(len(leaves), 1))
        noise = [
            (scale * jax.random.normal(keys[i], f.shape, f.dtype) * jax.lax.rsqrt(f + damping)).astype(f.dtype)
            for i, f in enumerate(leaves)
        ]
        noise = jax.tree.unflatten(treedef, noise)
        return jax.tree.map(lambda u, n: u + n.astype(u.dtype), inner_updates, noise), state

    return optax.GradientTransformationExtraArgs(init, update)


def make(cfg, num_actions: int) -> Strategy:
    """The natural Langevin strategy: greedy on the current parameters, noise added by the optimizer.

    No metric from act: the noise scale lives in the optimizer state, which the strategy does not see
    (`fisher_estimate` on the agent's opt_state gives it).
    """
    lg = cfg.langevin

    def optimizer(tx):
        return natural_langevin(tx, lg.beta, lg.decay, lg.damping)

    return Strategy(optimizer=optimizer)
