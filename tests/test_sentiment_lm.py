"""The mLSTM language model: weight-norm invariance, chunked = one-pass reading, byte streams, training."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx.errors import UserError
from rlx.results import RunDir
from rlx.sentiment import data, lm
from rlx.sentiment.mlstm import MLSTM, init_params, zero_carry

TEXTS = [data.preprocess(t) for t in ["good", "a truly awful film, i left early.", "é" * 40, "x" * 301, "ok then"]]


def _first(params):
    return jax.tree.map(lambda x: x[0], params)


@pytest.mark.slow
def test_weight_norm_makes_the_direction_parameters_scale_invariant():
    params = init_params(jax.random.PRNGKey(0), 32)
    tok = jnp.asarray(np.frombuffer(TEXTS[1], np.uint8))[None]
    model = MLSTM(32)
    base, _, _ = model.apply({"params": params}, zero_carry(1, 32), tok)
    scaled = {k: (v * 3.7 if k.endswith("_v") else v) for k, v in params.items()}
    again, _, _ = model.apply({"params": scaled}, zero_carry(1, 32), tok)
    np.testing.assert_allclose(np.asarray(again), np.asarray(base), rtol=1e-4, atol=1e-5)
    # g is not invariant: the scale parameters do change the output.
    bumped = {k: (v * 1.5 if k.endswith("_g") else v) for k, v in params.items()}
    other, _, _ = model.apply({"params": bumped}, zero_carry(1, 32), tok)
    assert np.abs(np.asarray(other) - np.asarray(base)).max() > 1e-2


@pytest.mark.slow
def test_chunked_reading_gives_the_one_pass_state():
    params = init_params(jax.random.PRNGKey(1), 32)
    chunked = lm.Reader(32, batch=4, window=16).read(params, TEXTS)
    one_pass = lm.Reader(32, batch=8, window=512).read(params, TEXTS)
    np.testing.assert_allclose(chunked[0], one_pass[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(chunked[1], one_pass[1], rtol=1e-5)
    # ...and both equal reading each text alone, unpadded, in one call.
    model = MLSTM(32)
    for i, t in enumerate(TEXTS):
        tok = jnp.asarray(np.frombuffer(t, np.uint8))[None]
        logits, (c, _), _ = model.apply({"params": params}, zero_carry(1, 32), tok)
        np.testing.assert_allclose(chunked[0][i], np.asarray(c[0]), rtol=1e-5, atol=1e-5)
        logp = jax.nn.log_softmax(logits[0, :-1])
        nats = -float(jnp.take_along_axis(logp, tok[0, 1:, None].astype(jnp.int32), axis=-1).sum())
        assert math.isclose(chunked[1][i], nats, rel_tol=1e-4)
    # The per-byte trace ends at the final state.
    unit = 5
    assert math.isclose(lm.Reader(32).trace(params, TEXTS[1], unit)[-1], chunked[0][1][unit], rel_tol=1e-4,
                        abs_tol=1e-5)


def _corpus(tmp_path, lines):
    p = tmp_path / "corpus.txt"
    p.write_bytes(b"".join(lines))
    return p


def test_byte_streams_are_contiguous_and_resume_exactly(tmp_path):
    lines = [f"document number {i} says {'la ' * (i % 7)}\n".encode() for i in range(40)]
    lines[3] = b"bad \xff byte\n"
    path = _corpus(tmp_path, lines)
    s = lm.ByteStreams(path, batch=3, window=10)
    w = s.take(30)
    assert w.shape == (30, 3, 11) and w.dtype == np.uint8
    np.testing.assert_array_equal(w[1:, :, 0], w[:-1, :, -1])  # windows overlap by exactly one byte
    stream0 = bytes(w[0, 0]) + b"".join(bytes(w[k, 0, 1:]) for k in range(1, 30))
    docs = b"".join(data.preprocess(line.decode("utf-8", "replace")) for line in lines)
    assert docs.startswith(stream0)
    assert s.replaced == 1
    pos = s.position()
    ahead = s.take(50)
    s.seek(pos)
    np.testing.assert_array_equal(s.take(50), ahead)
    s.close()


def test_byte_streams_wrap_around_a_tiny_corpus(tmp_path):
    s = lm.ByteStreams(_corpus(tmp_path, [b"one\n", b"\n", b"two\n"]), batch=4, window=8)
    w = s.take(20)  # far more than the file holds: every stream wraps
    assert set(np.unique(w)) <= set(b"\n onetw")
    s.close()
    with pytest.raises(UserError, match="no non-blank line"):
        lm.ByteStreams(_corpus(tmp_path, [b"\n", b"  \n"]), batch=1, window=4)


def _train(tmp_path, name, seeds=2, steps=6, **kw):
    cfg = lm.LMConfig(hidden=16, batch=4, window=8, steps=steps, chunk=3, **kw)
    corpus = _corpus(tmp_path, [f"line {i} of some text\n".encode() for i in range(30)])
    return lm.train(cfg, corpus, RunDir(tmp_path / name), seeds)


@pytest.mark.slow
def test_seeds_differ_and_the_same_seed_repeats(tmp_path):
    a = _train(tmp_path, "a")
    b = _train(tmp_path, "b")
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    emb = np.asarray(a["params"]["embed"])
    assert not np.allclose(emb[0], emb[1])
    rows = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows] == [3, 3, 6, 6] and all(r["bits_per_byte"] > 0 for r in rows)


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    from rlx.loop import Interrupted

    full = _train(tmp_path, "full", seeds=1, steps=9)
    cfg = lm.LMConfig(hidden=16, batch=4, window=8, steps=9, chunk=3)
    corpus = tmp_path / "corpus.txt"

    def ctrl_c(steps, rows):
        if steps == 6:  # a Ctrl-C after chunk 2 is saved: the run continues from update 6
            raise KeyboardInterrupt

    part = RunDir(tmp_path / "part")
    part.write_config({"lm": dataclasses.asdict(cfg), "seeds": 1})
    with pytest.raises(Interrupted):
        lm.train(cfg, corpus, part, 1, on_chunk=ctrl_c)
    resumed = lm.train(cfg, corpus, RunDir(tmp_path / "part", resume=True), 1, resume=True)
    for x, y in zip(jax.tree.leaves(full["params"]), jax.tree.leaves(resumed["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    rows = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["steps"] for r in rows] == [3, 6, 9]


def test_generate_is_seeded_and_clamps_the_unit():
    params = init_params(jax.random.PRNGKey(2), 16)
    a = lm.generate(params, 16, b"\n the", 40, jax.random.PRNGKey(0))
    b = lm.generate(params, 16, b"\n the", 40, jax.random.PRNGKey(0))
    c = lm.generate(params, 16, b"\n the", 40, jax.random.PRNGKey(1))
    assert a == b and a != c and len(a) == 40
    assert lm.generate(params, 16, b"\n the", 40, jax.random.PRNGKey(0), clamp=(3, 50.0)) != a
    with pytest.raises(UserError, match="does not exist"):
        lm.generate(params, 16, b"x", 5, jax.random.PRNGKey(0), clamp=(16, 1.0))


def test_settings_are_type_checked():
    # --set strings go through the same parser as the RL config's; an lm. prefix is accepted
    cfg = lm.config_from(C.parse_set(["lr=1e-3", "lm.batch=8"]))
    assert (cfg.lr, cfg.batch) == (1e-3, 8)
    with pytest.raises(UserError, match="unknown language-model setting 'lrr'"):
        lm.config_from({"lrr": "1"})
    with pytest.raises(UserError, match="batch expects an integer"):
        lm.config_from({"batch": "eight"})
    with pytest.raises(UserError, match="hidden must be positive"):
        lm.config_from({"hidden": 0})
    with pytest.raises(UserError, match="dtype"):
        lm.config_from({"dtype": "fp8"})


@pytest.mark.slow
def test_lm_learns_the_default_corpus_below_3_bits_per_byte(tmp_path):
    splits = data.default_splits()
    from rlx.sentiment import study

    corpus = study.lm_corpus(splits, None, tmp_path)
    cfg = lm.LMConfig(hidden=128, batch=32, window=64, steps=600, chunk=300, lr=3e-3)
    out = lm.train(cfg, corpus, RunDir(tmp_path / "run"), 1)
    dev = [data.preprocess(t) for t in splits.dev.texts[:300]]
    held_out = lm.Reader(128).bits_per_byte(_first(out["params"]), dev)
    assert out["train_bits_per_byte"][0] < 3.0
    assert held_out < 3.0, held_out  # on dev reviews the LM never read
