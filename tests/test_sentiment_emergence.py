"""Emergence control: on synthetic reviews whose opinion words all follow one hidden polarity, a small mLSTM
trained only to predict bytes grows a single cell unit that classifies held-out reviews, while the same probe
on a randomly initialised LM does not. This is the proof that the pipeline can find a sentiment neuron."""

import jax
import numpy as np
import pytest
from synthetic_reviews import reviews

from rlx.results import RunDir
from rlx.sentiment import data, lm, probe


@pytest.mark.slow
def test_a_single_sentiment_unit_emerges_from_next_byte_prediction(tmp_path):
    texts, _ = reviews(20_000, seed=1)
    corpus = lm.write_corpus(texts, tmp_path / "corpus.txt")
    cfg = lm.LMConfig(hidden=128, batch=32, window=128, steps=2000, chunk=500, lr=3e-3)
    trained = jax.tree.map(lambda x: x[0], lm.train(cfg, corpus, RunDir(tmp_path / "run"), 1)["params"])
    random_init = lm.init_params(jax.random.PRNGKey(99), 128)
    reader = lm.Reader(128)
    parts = {name: reviews(n, seed) for name, n, seed in (("train", 1000, 2), ("dev", 500, 4), ("test", 1000, 3))}

    def probed(params):
        feats = {k: (reader.features(params, [data.preprocess(t) for t in x]), y) for k, (x, y) in parts.items()}
        return probe.probe(feats["train"], feats["dev"], feats["test"])

    res, ctrl = probed(trained), probed(random_init)
    print("trained:", res["accuracy"], res["nonzero"], res["unit"], "random:", ctrl["accuracy"], ctrl["unit"])
    assert res["unit"]["accuracy"] >= 0.95  # one unit alone, threshold fitted on train, held-out reviews
    # Sparse, not exact: the same commit gave 4 non-zero weights on a Xeon VM and 10 on an AMD EPYC VM (XLA's
    # CPU code differs by instruction set, and 2,000 updates amplify it); the single unit held on both.
    assert res["nonzero"] <= 16
    assert res["accuracy"] >= 0.95
    assert ctrl["accuracy"] <= 0.60 and ctrl["unit"]["accuracy"] <= 0.60
    assert np.mean(parts["test"][1]) > 0.4  # both classes are really there
