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
        if not self.has_rng("noise"):
            return x @ kernel + bias
        # make_rng folds in this module's path, so every layer draws its own noise from one key.
        k_in, k_out = jax.random.split(self.make_rng("noise"))
        eps_in = f_scale(jax.random.normal(k_in, (p,), x.dtype))
        eps_out = f_scale(jax.random.normal(k_out, (q,), x.dtype))
        # Visible to tests and diagnostics via apply(..., mutable=["intermediates"]); free otherwise.
        self.sow("intermediates", "eps_in", eps_in)
        self.sow("intermediates", "eps_out", eps_out)
        # Building W costs p·q multiply-adds; the factorised form x·μ_w + ((x ⊙ ε_in)·σ_w) ⊙ ε_out, which never
        # builds it, costs a second batch×p×q matmul and its backward pass: the CartPole TD update (batch 128,
        # 8 seeds) took 4.6-5.5 ms that way against 2.2-2.8 ms with W built (bench in docs/benchmarks.md).
        w = kernel + sigma_kernel * (eps_in[:, None] * eps_out)
        return x @ w + bias + sigma_bias * eps_out


ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh}  # net.activation
HEADS = ("plain", "hadamard", "wide")  # net.head: the form of the last hidden layer (hidden_stack)
TORSOS = ("auto", "mlp", "nature_cnn", "minatar_cnn")  # net.torso (make_q_network)


def dense_layer(noisy: bool, sigma0: float):
    """The Dense class the Q-networks build: NoisyDense with σ0 when noisy, else nn.Dense."""
    return functools.partial(NoisyDense, sigma0=sigma0) if noisy else nn.Dense


def leaf_names(tree) -> list[str]:
    """"/"-joined key paths of a params pytree's leaves, in leaf order ("params/Dense_0/kernel")."""
    return ["/".join(str(getattr(p, "key", getattr(p, "name", p))) for p in path)
            for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def wide_width(width: int, fan_in: int, num_actions: int) -> int:
    """Width of a plain layer with as many parameters (with the output layer after it) as a hadamard layer of
    `width`: (p+1)·w' + (w'+1)·A = 2·(p+1)·w + (w+1)·A, rounded."""
    return round(width * (2 * (fan_in + 1) + num_actions) / (fan_in + 1 + num_actions))


def hidden_stack(module: nn.Module, x, widths, num_actions: int, *, dense, activation: str = "relu",
                 head: str = "plain", layer_norm: bool = False):
    """The hidden Dense layers; the last one (the representation the output layer reads) takes the `head` form.

    Sows each layer's output as intermediates "h<i>" and, for tanh layers, the tanh outputs as "tanh_h<i>"
    (both factors of a hadamard layer) for rlx.diagnostics; sowing is free unless asked for.
    """
    act = ACTIVATIONS[activation]

    def pre(width, h):
        h = dense(width)(h)
        return nn.LayerNorm()(h) if layer_norm else h

    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        if last and head == "hadamard":
            a, b = act(pre(width, x)), act(pre(width, x))
            x = a * b
            tanh_out = jnp.concatenate([a, b], axis=-1)
        else:
            if last and head == "wide":
                width = wide_width(width, x.shape[-1], num_actions)
            x = act(pre(width, x))
            tanh_out = x
        module.sow("intermediates", f"h{i}", x)
        if activation == "tanh":
            module.sow("intermediates", f"tanh_h{i}", tanh_out)
    return x


class MLP(nn.Module):
    """MLP Q-network over flattened observations; optional LayerNorm after each hidden Dense.

    noisy=True makes every Dense (hidden and head) a NoisyDense with σ0 = noisy_sigma0. `activation` and
    `head` shape the hidden layers (see hidden_stack).
    """

    hidden: Sequence[int]
    num_actions: int
    layer_norm: bool = False
    obs_ndim: int = 1  # trailing axes that make up one observation
    noisy: bool = False
    noisy_sigma0: float = 0.5
    activation: str = "relu"
    head: str = "plain"

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[: x.ndim - self.obs_ndim] + (-1,))
        return self.q_head(x)

    def q_head(self, x):
        """The hidden stack and the output layer over features (called from a compact __call__)."""
        dense = dense_layer(self.noisy, self.noisy_sigma0)
        x = hidden_stack(self, x, self.hidden, self.num_actions, dense=dense, activation=self.activation,
                         head=self.head, layer_norm=self.layer_norm)
        return dense(self.num_actions)(x)


class MinAtarCNN(MLP):
    """The MinAtar baseline network (Young & Tian 2019) over (..., 10, 10, C) grids: conv 16x3x3/1 (valid,
    ReLU), then the MLP's hidden Dense layers (128 in the baseline) and output layer (obs_ndim is unused)."""

    @nn.compact
    def __call__(self, x):
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:]).astype(jnp.float32)
        # The 3x3 convolution as patches @ kernel: under vmap over seeds XLA's CPU convolution (one kernel per
        # seed, a grouped convolution) measured 9.5x slower per chunk than this matmul (2 seeds, Breakout, 200 updates).
        h, w = x.shape[1] - 2, x.shape[2] - 2
        x = jnp.concatenate([x[:, i : i + h, j : j + w, :] for i in range(3) for j in range(3)], axis=-1)
        x = nn.Dense(16, name="Conv_0")(x)
        if self.layer_norm:
            x = nn.LayerNorm()(x)
        x = nn.relu(x)
        self.sow("intermediates", "c0", x)
        return self.q_head(x.reshape(x.shape[0], -1)).reshape(lead + (self.num_actions,))


def valid_patches(x, kernel_size: tuple[int, int], strides: tuple[int, int]):
    """The VALID-convolution patches of NHWC `x`: (N, H', W', kh·kw·C), features ordered (kh, kw, C), the order of an
    HWIO kernel reshaped to (kh·kw·C, Cout). Built from kh·kw strided slices (as MinAtarCNN's 3x3 patches are), not
    with lax.conv_general_dilated_patches: that op is itself a convolution (with a one-hot kernel) and measured 2-3x
    slower than the slices in the Nature CNN's gradient on XLA:CPU."""
    (kh, kw), (sh, sw) = kernel_size, strides
    n, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    return jnp.concatenate([
        jax.lax.slice(x, (0, i, j, 0), (n, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, c), (1, sh, sw, 1))
        for i in range(kh) for j in range(kw)
    ], axis=-1)  # fmt: skip


class PatchConv(nn.Module):
    """Drop-in for nn.Conv(features, kernel_size, strides, padding="VALID") on (..., H, W, C) input, with the same
    parameters (kernel (kh, kw, Cin, Cout), bias (Cout,), nn.Conv's initializers, so the same key inits the same
    values): checkpoints do not depend on the backend that computes it.

    patches=True computes patches @ kernel (valid_patches), False lax.conv_general_dilated (what nn.Conv runs),
    None (default) picks patches when jax.default_backend() is "cpu" at trace time. Why: XLA:CPU computes a
    convolution's kernel gradient very slowly; one gradient of the Nature CNN (batch 32) inside a jitted lax.scan
    measured 245 ms with lax.conv_general_dilated and 21 ms as patches @ kernel, 11.7x (2-core CPU, jax 0.10.2,
    `python bench/bench.py --part cnn`), and the matmul form stays a batched matmul under vmap over seeds (2 seeds:
    689 vs 43 ms). On GPU/TPU the cuDNN/XLA convolution is the fast one.
    """

    features: int
    kernel_size: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    patches: bool | None = None
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=None)
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        use_patches = jax.default_backend() == "cpu" if self.patches is None else self.patches
        if use_patches:
            y = valid_patches(x, self.kernel_size, self.strides) @ kernel.reshape(-1, self.features)
        else:
            y = jax.lax.conv_general_dilated(x, kernel, self.strides, "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        y = y + bias
        return y.reshape(lead + y.shape[1:])


class NatureCNN(nn.Module):
    """The DQN Nature CNN over uint8 frame stacks (..., 4, 84, 84): conv 32x8x8/4, 64x4x4/2, 64x3x3/1, dense 512.

    Optional LayerNorm after every layer. With noisy=True the dense layers are NoisyDense; parameter noise
    perturbs only the dense layers (their modules are Dense_i), never the convolutions.
    The convolutions are PatchConv (parameters as nn.Conv's, modules Conv_i); conv_patches chooses their form
    (None: patches @ kernel on CPU, lax.conv_general_dilated elsewhere).
    """

    num_actions: int
    layer_norm: bool = False
    noisy: bool = False
    noisy_sigma0: float = 0.5
    conv_patches: bool | None = None

    @nn.compact
    def __call__(self, x):
        dense = dense_layer(self.noisy, self.noisy_sigma0)
        lead = x.shape[:-3]
        # channels-first uint8 frames -> NHWC floats in [0, 1]
        x = jnp.moveaxis(x.reshape((-1,) + x.shape[-3:]), 1, -1).astype(jnp.float32) / 255.0
        for i, (features, kernel, stride) in enumerate(((32, 8, 4), (64, 4, 2), (64, 3, 1))):
            x = PatchConv(features, (kernel, kernel), (stride, stride), patches=self.conv_patches, name=f"Conv_{i}")(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = nn.relu(x)
            self.sow("intermediates", f"c{i}", x)
        x = dense(512)(x.reshape(x.shape[0], -1))
        if self.layer_norm:
            x = nn.LayerNorm()(x)
        x = nn.relu(x)
        self.sow("intermediates", "h0", x)
        x = dense(self.num_actions)(x)
        return x.reshape(lead + (self.num_actions,))


def is_frame_stack(obs_shape) -> bool:
    """True for (stack, 84, 84) Atari observations."""
    return len(obs_shape) == 3 and tuple(obs_shape[1:]) == (84, 84)


def is_minatar_grid(obs_shape) -> bool:
    """True for (10, 10, C) MinAtar observations."""
    return len(obs_shape) == 3 and tuple(obs_shape[:2]) == (10, 10)


def torso_for(net_cfg, obs_shape) -> str:
    """The torso net.torso names, resolving auto from the observation shape."""
    if net_cfg.torso != "auto":
        return net_cfg.torso
    return "nature_cnn" if is_frame_stack(obs_shape) else "minatar_cnn" if is_minatar_grid(obs_shape) else "mlp"


def make_q_network(net_cfg, obs_shape, num_actions: int, **options) -> nn.Module:
    """The Q-network for a config and an env's observation shape; `options` (from the exploration
    strategy, e.g. layer_norm=True) override the config's."""
    kw = {"layer_norm": net_cfg.layer_norm, **options}
    torso = torso_for(net_cfg, obs_shape)
    if torso == "nature_cnn":
        # Its dense layer is the paper's 512 ReLU units; net.activation and net.head apply to the other torsos.
        return NatureCNN(num_actions, **kw)
    shape = {"activation": net_cfg.activation, "head": net_cfg.head}
    if torso == "minatar_cnn":
        return MinAtarCNN(tuple(net_cfg.hidden), num_actions, **shape, **kw)
    return MLP(tuple(net_cfg.hidden), num_actions, obs_ndim=len(obs_shape), **shape, **kw)


def greedy(q):
    """Argmax action as int32."""
    return jnp.argmax(q, axis=-1).astype(jnp.int32)
