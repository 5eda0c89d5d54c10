"""Flax modules for value networks."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def f_scale(x):
    """f(x) = sgn(x)·√|x|, the scaling of factorised NoisyNet noise (Fortunato et al. 2018, eq. 11)."""
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


def _uniform(bound: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class NoisyDense(nn.Module):
    """Dense layer with factorised Gaussian noise (NoisyNets): W = μ_w + σ_w ⊙ f(ε_in) f(ε_out)ᵀ, b = μ_b + σ_b ⊙ f(ε_out).

    Noisy only when the "noise" rng stream is given; without it the layer is a Dense with μ (evaluation).
    Parameters: kernel, bias (μ, named as in nn.Dense) and sigma_kernel, sigma_bias.
    """

    features: int
    sigma0: float = 0.5

    @nn.compact
    def __call__(self, x):
        p, q = x.shape[-1], self.features
        mu_init = _uniform(1.0 / math.sqrt(p))
        sigma_init = nn.initializers.constant(self.sigma0 / math.sqrt(p))
        kernel = self.param("kernel", mu_init, (p, q))
        bias = self.param("bias", mu_init, (q,))
        sigma_kernel = self.param("sigma_kernel", sigma_init, (p, q))
        sigma_bias = self.param("sigma_bias", sigma_init, (q,))
        y = x @ kernel + bias
        if not self.has_rng("noise"):
            return y
        # make_rng folds in this module's path, so every layer draws its own noise from one key.
        k_in, k_out = jax.random.split(self.make_rng("noise"))
        eps_in = f_scale(jax.random.normal(k_in, (p,), x.dtype))
        eps_out = f_scale(jax.random.normal(k_out, (q,), x.dtype))
        # Visible to tests and diagnostics via apply(..., mutable=["intermediates"]); free otherwise.
        self.sow("intermediates", "eps_in", eps_in)
        self.sow("intermediates", "eps_out", eps_out)
        # x (σ_w ⊙ ε_in ε_outᵀ) = ((x ⊙ ε_in) σ_w) ⊙ ε_out: the p×q noise matrix is never built.
        return y + ((x * eps_in) @ sigma_kernel) * eps_out + sigma_bias * eps_out


class MLP(nn.Module):
    """ReLU MLP Q-network over flattened observations; optional LayerNorm after each hidden Dense.

    noisy=True makes every Dense (hidden and head) a NoisyDense with σ0 = noisy_sigma0.
    """

    hidden: Sequence[int]
    num_actions: int
    layer_norm: bool = False
    obs_ndim: int = 1  # trailing axes that make up one observation (3 for MinAtar HxWxC grids)
    noisy: bool = False
    noisy_sigma0: float = 0.5

    @nn.compact
    def __call__(self, x):
        dense = functools.partial(NoisyDense, sigma0=self.noisy_sigma0) if self.noisy else nn.Dense
        x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        for width in self.hidden:
            x = dense(width)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        return dense(self.num_actions)(x)


class NatureCNN(nn.Module):
    """The DQN Nature CNN over uint8 frame stacks (..., 4, 84, 84): conv 32x8x8/4, 64x4x4/2, 64x3x3/1, dense 512.

    Optional LayerNorm after every layer. With noisy=True the dense layers are NoisyDense; parameter noise
    perturbs only the dense layers (their modules are Dense_i), never the convolutions.
    """

    num_actions: int
    layer_norm: bool = False
    noisy: bool = False
    noisy_sigma0: float = 0.5

    @nn.compact
    def __call__(self, x):
        dense = functools.partial(NoisyDense, sigma0=self.noisy_sigma0) if self.noisy else nn.Dense
        lead = x.shape[:-3]
        # channels-first uint8 frames -> NHWC floats in [0, 1]
        x = jnp.moveaxis(x.reshape((-1,) + x.shape[-3:]), 1, -1).astype(jnp.float32) / 255.0
        for features, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = nn.Conv(features, (kernel, kernel), (stride, stride), padding="VALID")(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
        x = dense(512)(x.reshape(x.shape[0], -1))
        if self.layer_norm:
            x = nn.LayerNorm()(x)
        x = dense(self.num_actions)(nn.relu(x))
        return x.reshape(lead + (self.num_actions,))


def is_frame_stack(obs_shape) -> bool:
    """True for (stack, 84, 84) Atari observations."""
    return len(obs_shape) == 3 and tuple(obs_shape[1:]) == (84, 84)


def make_q_network(net_cfg, obs_shape, num_actions: int, **options) -> nn.Module:
    """The Q-network for a config and an env's observation shape; `options` (from the exploration
    strategy, e.g. layer_norm=True) override the config's."""
    kw = {"layer_norm": net_cfg.layer_norm, **options}
    torso = net_cfg.torso if net_cfg.torso != "auto" else ("nature_cnn" if is_frame_stack(obs_shape) else "mlp")
    if torso == "nature_cnn":
        return NatureCNN(num_actions, **kw)
    return MLP(tuple(net_cfg.hidden), num_actions, obs_ndim=len(obs_shape), **kw)


def greedy(q):
    """Argmax action as int32."""
    return jnp.argmax(q, axis=-1).astype(jnp.int32)
