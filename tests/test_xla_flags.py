"""The XLA option rlx compiles its training chunk with: reductions left to XLA's own loops on jaxlib 0.10's CPU."""

import jax
import jax.numpy as jnp
import pytest

from rlx import runner


@pytest.mark.skipif(not runner.chunk_compiler_options(), reason="set only on jaxlib 0.10's CPU backend")
def test_the_chunk_option_keeps_reductions_out_of_ynnpack():
    layer_norm_like = jax.jit(lambda x: x - jnp.mean(x, axis=-1, keepdims=True) * jnp.sum(x * x, axis=-1, keepdims=True))
    lowered = layer_norm_like.lower(jnp.ones((128, 120)))
    assert "__ynn_fusion" in lowered.compile().as_text()  # the default this option exists to change
    assert "__ynn_fusion" not in lowered.compile(compiler_options=runner.chunk_compiler_options()).as_text()
