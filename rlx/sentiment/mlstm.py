"""Byte-level multiplicative LSTM (Krause et al. 2016) with weight normalisation, as in Radford et al. 2017.

    m = (x Wmx) ⊙ (h Wmh);  z = x Wx + m Wh + b;  i, f, o, u = split(z)
    c' = σ(f) c + σ(i) tanh(u);  h' = σ(o) tanh(c')

Every matrix W is g ⊙ v / ‖v‖ (norms over the input axis, one scale per output unit), so scaling v changes
nothing. The state (c, h) stays float32; matmuls run in `compute_dtype` (bf16 on GPU) with float32
accumulation. A mask freezes the state at padding, so reading a text in chunks gives the state of one pass.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

VOCAB = 256
EMBED_STD = 1.0  # unit-variance embeddings: with unit-norm W columns the gates start at unit-scale inputs
FORGET_BIAS = 2.0  # σ(2) ≈ 0.88: gradients reach back far enough to find long-range structure (see docs/results.md)


def _unit_columns(key, shape, dtype=jnp.float32):
    # Unit-norm columns with g = 1 start each W at the usual 1/sqrt(fan_in) scale.
    v = jax.random.normal(key, shape, dtype)
    return v / jnp.linalg.norm(v, axis=0, keepdims=True)


class MLSTM(nn.Module):
    """Byte embedding → mLSTM → logits over the next byte. Call with (carry, tokens (B, T) uint8, mask (B, T))."""

    hidden: int
    embed: int = 64
    compute_dtype: Any = jnp.float32

    def _wn(self, name: str, shape) -> jax.Array:
        v = self.param(f"{name}_v", _unit_columns, shape)
        g = self.param(f"{name}_g", nn.initializers.ones, (shape[1],))
        return g * v / jnp.linalg.norm(v, axis=0, keepdims=True)

    def _mm(self, a, w):
        cd = self.compute_dtype
        return jnp.dot(a.astype(cd), w.astype(cd), preferred_element_type=jnp.float32)

    @nn.compact
    def __call__(self, carry, tokens, mask=None, *, return_cells: bool = False):
        """Returns (logits (B, T, 256), carry, cells (B, T, H) if return_cells else None)."""
        H, E = self.hidden, self.embed
        emb = self.param("embed", nn.initializers.normal(EMBED_STD), (VOCAB, E))
        wx, wmx = self._wn("wx", (E, 4 * H)), self._wn("wmx", (E, H))
        wh, wmh = self._wn("wh", (H, 4 * H)), self._wn("wmh", (H, H))
        b = self.param("b", lambda k, s: jnp.zeros(s).at[H : 2 * H].set(FORGET_BIAS), (4 * H,))  # gates i, f, o, u
        w_out = self.param("out_kernel", nn.initializers.lecun_normal(), (H, VOCAB))
        b_out = self.param("out_bias", nn.initializers.zeros, (VOCAB,))

        x = emb[tokens.astype(jnp.int32)]  # (B, T, E)
        # The input projections need no recurrence: one big matmul for the whole window.
        zx = jnp.swapaxes(self._mm(x, wx) + b, 0, 1)  # (T, B, 4H)
        mx = jnp.swapaxes(self._mm(x, wmx), 0, 1)  # (T, B, H)
        keep = jnp.ones(tokens.shape, bool) if mask is None else mask.astype(bool)
        keep = jnp.swapaxes(keep, 0, 1)[..., None]  # (T, B, 1)

        def step(state, inp):
            c, h = state
            zx_t, mx_t, keep_t = inp
            m = mx_t * self._mm(h, wmh)
            i, f, o, u = jnp.split(zx_t + self._mm(m, wh), 4, axis=-1)
            c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(u)
            h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
            c_new, h_new = jnp.where(keep_t, c_new, c), jnp.where(keep_t, h_new, h)
            return (c_new, h_new), (h_new, c_new if return_cells else None)

        carry, (hs, cs) = jax.lax.scan(step, carry, (zx, mx, keep))
        logits = self._mm(jnp.swapaxes(hs, 0, 1), w_out) + b_out
        cells = jnp.swapaxes(cs, 0, 1) if return_cells else None
        return logits, carry, cells


def zero_carry(batch: int, hidden: int):
    """The initial (c, h) state: zeros, float32."""
    z = jnp.zeros((batch, hidden), jnp.float32)
    return z, z


def init_params(key, hidden: int, embed: int = 64):
    """Fresh parameters for an MLSTM of the given size (shapes do not depend on the compute dtype)."""
    model = MLSTM(hidden, embed)
    return model.init(key, zero_carry(1, hidden), jnp.zeros((1, 1), jnp.uint8))["params"]
