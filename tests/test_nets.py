"""PatchConv and NatureCNN: the patches @ kernel path computes what nn.Conv computes, from the same parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx.nets import NatureCNN, PatchConv, leaf_names

# (features, kernel, stride, input (H, W, Cin)) of the Nature CNN's three convolutions
NATURE_LAYERS = [(32, 8, 4, (84, 84, 4)), (64, 4, 2, (20, 20, 32)), (64, 3, 1, (9, 9, 64))]
RNG = np.random.default_rng(0)


def max_abs(a, b=0.0) -> float:
    """max |a - b|, in numpy (an eager jax op compiles a program per shape)."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def same_leaves(a, b) -> bool:
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def check_layer(features, kernel, stride, shape):
    ref = nn.Conv(features, (kernel, kernel), (stride, stride), padding="VALID")
    patch, conv = (PatchConv(features, (kernel, kernel), (stride, stride), patches=p) for p in (True, False))
    cin = shape[-1]
    # Random bias too (nn.Conv initializes it to zeros); the initial values are compared in the NatureCNN test.
    # numpy draws: eager jax.random ops compile one program per shape, seconds of this test.
    params = {"params": {"kernel": RNG.normal(size=(kernel, kernel, cin, features)).astype(np.float32) / kernel / cin**0.5,
                         "bias": RNG.normal(size=features).astype(np.float32)}}  # fmt: skip
    x = RNG.normal(size=(3, *shape)).astype(np.float32)
    assert jax.tree.structure(jax.eval_shape(patch.init, jax.random.PRNGKey(0), x)) == jax.tree.structure(params)

    @jax.jit
    def outputs(params, x):
        x2 = x[:2].reshape(2, 1, *shape)  # leading axes beyond one batch axis, as nn.Conv allows
        return ref.apply(params, x), patch.apply(params, x), conv.apply(params, x), patch.apply(params, x2)

    want, y_patch, y_conv, y_patch2 = outputs(params, x)
    assert y_patch.shape == y_conv.shape == want.shape
    assert max_abs(y_patch, want) < 1e-5, (kernel, stride)
    assert max_abs(y_conv, want) < 1e-5, (kernel, stride)
    assert y_patch2.shape == (2, 1, *want.shape[1:])
    assert max_abs(np.asarray(y_patch2).reshape(want[:2].shape), np.asarray(want)[:2]) < 1e-5


@pytest.mark.slow
def test_patch_conv_equals_nn_conv():
    for layer in NATURE_LAYERS:
        check_layer(*layer)


class ConvNatureCNN(nn.Module):
    """NatureCNN as it was written with nn.Conv: the parameter tree PatchConv must keep."""

    num_actions: int

    @nn.compact
    def __call__(self, x):
        x = jnp.moveaxis(x.reshape((-1,) + x.shape[-3:]), 1, -1).astype(jnp.float32) / 255.0
        for features, kernel, stride in ((32, 8, 4), (64, 4, 2), (64, 3, 1)):
            x = nn.relu(nn.Conv(features, (kernel, kernel), (stride, stride), padding="VALID")(x))
        x = nn.relu(nn.Dense(512)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_actions)(x)


FRAMES = RNG.integers(0, 256, (2, 2, 4, 84, 84), dtype=np.uint8)


@pytest.mark.slow
def test_nature_cnn_params_match_nn_conv():
    key = jax.random.PRNGKey(2)
    ref_model, patch, conv = ConvNatureCNN(6), NatureCNN(6, conv_patches=True), NatureCNN(6, conv_patches=False)

    @jax.jit  # one program: each compile costs seconds here
    def run(key):
        params = patch.init(key, FRAMES)
        return ref_model.init(key, FRAMES), params, [m.apply(params, FRAMES) for m in (ref_model, patch, conv)]

    ref, params, (q_ref, q_patch, q_conv) = run(key)
    # The tree of the NatureCNN built with nn.Conv, leaf for leaf (names and shapes), and the same initial values.
    assert leaf_names(params) == leaf_names(ref)
    assert "params/Conv_2/kernel" in leaf_names(params)
    assert [a.shape for a in jax.tree.leaves(params)] == [a.shape for a in jax.tree.leaves(ref)]
    assert same_leaves(params, ref)
    assert leaf_names(jax.eval_shape(conv.init, key, FRAMES)) == leaf_names(params)
    assert q_patch.shape == (2, 2, 6)
    assert max_abs(q_patch, np.asarray(q_ref).reshape(q_patch.shape)) < 1e-5
    assert max_abs(q_patch, q_conv) < 1e-5


@pytest.mark.slow
def test_nature_cnn_paths_agree_with_layer_norm():
    patch, conv = NatureCNN(6, layer_norm=True, conv_patches=True), NatureCNN(6, layer_norm=True, conv_patches=False)

    def q_and_grad(model, params):
        def loss(p):
            q, state = model.apply(p, FRAMES, mutable=["intermediates"])
            return jnp.sum(q**2), (q, state["intermediates"])

        return jax.value_and_grad(loss, has_aux=True)(params)

    @jax.jit
    def run(key):
        params = patch.init(key, FRAMES)
        return params, q_and_grad(patch, params), q_and_grad(conv, params)

    params, ((_, (q_patch, sown)), g_patch), ((_, (q_conv, _)), g_conv) = run(jax.random.PRNGKey(3))
    assert max_abs(q_patch, q_conv) < 1e-5
    names = leaf_names(params)
    assert any("LayerNorm" in n for n in names)
    for name, a, b in zip(names, jax.tree.leaves(g_patch), jax.tree.leaves(g_conv), strict=True):
        assert max_abs(a, b) <= 1e-4 * max_abs(b) + 1e-7, name
    # The sown activations are still there, one per layer.
    shapes = {k: v[0].shape for k, v in sown.items()}
    assert shapes == {"c0": (4, 20, 20, 32), "c1": (4, 9, 9, 64), "c2": (4, 7, 7, 64), "h0": (4, 512)}
