"""The sentiment-neuron study end to end: train (or load) the LM, read the labelled texts, probe, controls,
figures and summary.json. `rlx probe-sentiment` is a thin layer over run()."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from rlx.errors import UserError
from rlx.sentiment import data, figures, lm, probe

# The random-init control uses a key no training seed uses.
_RANDOM_INIT_TAG = 0x0C0FFEE
# Reviews drawn in the per-byte figure: a few short ones of each class from the test split.
_TRACE_REVIEWS = 3


def load_model(run: Path) -> tuple[lm.LMConfig, int, object]:
    """(config, seeds, stacked params) of a language model trained by an earlier `rlx probe-sentiment`."""
    from rlx import loop
    from rlx.results import RunDir

    run = Path(run)
    if run.name == "checkpoints" or run.parent.name == "checkpoints":  # accept the checkpoint folder too
        run = run.parent if run.name == "checkpoints" else run.parent.parent
    if not (run / "config.json").is_file():
        raise UserError(f"{run}: no config.json; give the run directory of an earlier `rlx probe-sentiment`.")
    saved = RunDir(run, resume=True).read_config()
    if "lm" not in saved:
        raise UserError(f"{run}: not a language-model run (config.json has no 'lm'); give a probe-sentiment run.")
    cfg, seeds = lm.config_from(saved["lm"]), int(saved.get("seeds", 1))
    _, abstract = lm.seed_states(cfg, seeds)
    mngr = loop.checkpointer(run / "checkpoints")
    steps, state, _ = loop.restore_latest(mngr, abstract, run)
    mngr.close()
    if state is None:
        raise UserError(f"{run}: no checkpoint in {run / 'checkpoints'}; train it first (or --resume it).")
    return dataclasses.replace(cfg, steps=steps), seeds, state.params


def lm_corpus(splits: data.Splits, corpus: Path | None, run_path: Path) -> Path:
    """The LM's training text: the user's file, or the default snippets without the dev and test texts (the
    LM never reads a text it is tested on), written once, shuffled, into the run directory."""
    if corpus is not None:
        data.check_corpus(corpus)
        return corpus
    path = run_path / "corpus.txt"
    if not path.exists():
        texts = data.default_corpus(exclude=set(splits.dev.texts) | set(splits.test.texts))
        order = np.random.default_rng(0).permutation(len(texts))
        lm.write_corpus([texts[i] for i in order], path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return path


def _read(reader, params, texts: dict, labels: dict) -> tuple[dict, float]:
    """({part: (final cell states, labels)}, dev bits per byte) from one pass over each part."""
    feats, dev_nats = {}, None
    for k, t in texts.items():
        cells, nats = reader.read(params, t)
        feats[k] = (cells, labels[k])
        dev_nats = nats if k == "dev" else dev_nats
    return feats, lm.bits_per_byte(dev_nats, texts["dev"])


def _probe_features(feats: dict, reps: int, seed: int) -> tuple[dict, dict]:
    """probe() and the data-efficiency curve of one feature set {"train": (X, y), "dev": ..., "test": ...}."""
    res = probe.probe(feats["train"], feats["dev"], feats["test"])
    unit = res["unit"]
    curve = probe.data_efficiency(feats["train"], feats["test"], reps=reps, seed=seed, C=res["C"],
                                  unit=(unit["index"], unit["sign"]))
    return res, curve


def run(cfg: lm.LMConfig, run_dir, *, seeds: int = 1, corpus: Path | None = None, labelled: Path | None = None,
        model: Path | None = None, resume: bool = False, reps: int = 10, on_chunk: Callable | None = None,
        say: Callable = print) -> dict:
    """Train (or load) the LM, probe its final cell states and the controls, draw the figures and write
    summary.json in run_dir; returns the summary."""
    splits = data.load_labelled(labelled) if labelled is not None else data.default_splits()
    if splits.replaced:
        say(f"{splits.replaced} labelled texts had undecodable bytes, replaced with U+FFFD")
    if model is not None:
        cfg, seeds, params = load_model(model)
        train_info = {"steps": cfg.steps, "train_bits_per_byte": [None] * seeds, "wall_seconds": 0.0}
    else:
        path = lm_corpus(splits, corpus, run_dir.path)
        train_info = lm.train(cfg, path, run_dir, seeds, resume=resume, on_chunk=on_chunk)
        if train_info["replaced_lines"]:
            say(f"{train_info['replaced_lines']} corpus lines had undecodable bytes, replaced with U+FFFD")
        params = train_info["params"]

    reader = lm.Reader(cfg.hidden, cfg.embed, compute_dtype=cfg.compute_dtype())
    parts = {"train": splits.train, "dev": splits.dev, "test": splits.test}
    texts = {k: [data.preprocess(t) for t in v.texts] for k, v in parts.items()}
    labels = {k: np.asarray(v.labels) for k, v in parts.items()}
    per_seed = []
    for s in range(seeds):
        p = jax.tree.map(lambda x, s=s: x[s], params)
        say(f"seed {s}: reading {sum(map(len, parts.values())):,} labelled texts")
        feats, dev_bpb = _read(reader, p, texts, labels)
        res, curve = _probe_features(feats, reps, seed=s)
        per_seed.append({"seed": s, "full_probe": {"accuracy": res["accuracy"], "nonzero": res["nonzero"],
                                                   "C": res["C"]},
                         "unit": {k: res["unit"][k] for k in ("index", "accuracy", "sign")},
                         "dev_bits_per_byte": dev_bpb})
        if s == 0:
            first = (p, feats, res, curve)

    p, feats, res, curve = first
    rand_params = lm.init_params(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), _RANDOM_INIT_TAG),
                                 cfg.hidden, cfg.embed)
    say("random-init control: reading the labelled texts")
    rfeats, _ = _read(reader, rand_params, texts, labels)
    rres, rcurve = _probe_features(rfeats, reps, seed=0)
    bfeats = {k: (probe.bag_of_bytes(texts[k]), labels[k]) for k in parts}
    bres, bcurve = _probe_features(bfeats, reps, seed=0)

    unit = res["unit"]
    # Clamp values for `rlx generate --sentiment`: the unit's extremes (1st/99th percentile) over test reviews.
    lo, hi = np.percentile(feats["test"][0][:, unit["index"]], [1, 99])
    clamp = {"positive": float(hi), "negative": float(lo)} if unit["sign"] > 0 else \
        {"positive": float(lo), "negative": float(hi)}
    curves = {
        "full probe": _band(curve, ""),
        f"unit {unit['index']} alone": _band(curve, "unit_"),
        "random-init LM, full probe": _band(rcurve, ""),
        "bag of bytes": _band(bcurve, ""),
    }
    figs = _figures(run_dir.path, reader, p, texts["test"], feats, unit, curves)

    mean = lambda xs: float(np.mean(xs))  # noqa: E731
    summary = {
        "full_probe": {"accuracy": res["accuracy"], "nonzero": res["nonzero"], "C": res["C"],
                       "dev_accuracy": res["dev_accuracy"]},
        "unit": {"index": unit["index"], "accuracy": unit["accuracy"], "sign": unit["sign"],
                 "threshold": unit["threshold"], "clamp": clamp},
        "controls": {"random_init_full": rres["accuracy"], "random_init_unit": rres["unit"]["accuracy"],
                     "bag_of_bytes": bres["accuracy"]},
        "n_train": len(splits.train), "n_dev": len(splits.dev), "n_test": len(splits.test),
        "lm": {"hidden": cfg.hidden, "steps": int(train_info["steps"]),
               "bits_per_byte": per_seed[0]["dev_bits_per_byte"],
               "train_bits_per_byte": train_info["train_bits_per_byte"][0],
               "config": dataclasses.asdict(cfg), "seeds": seeds,
               "wall_seconds": train_info["wall_seconds"]},
        "data_efficiency": curves,
        "per_seed": per_seed,
        "figures": figs,
    }
    if seeds > 1:
        summary["mean_over_seeds"] = {"full_probe_accuracy": mean([r["full_probe"]["accuracy"] for r in per_seed]),
                                      "unit_accuracy": mean([r["unit"]["accuracy"] for r in per_seed])}
    run_dir.write_summary(summary)
    return summary


def _band(curve: dict, prefix: str) -> dict:
    return {"sizes": curve["sizes"], "mean": curve[f"{prefix}mean"], "p10": curve[f"{prefix}p10"],
            "p90": curve[f"{prefix}p90"]}


def _figures(out: Path, reader, params, test: list[bytes], feats, unit, curves) -> list[str]:
    """unit_histogram.png, unit_text.png (+ .html) and data_efficiency.png in out; returns their names."""
    X_test, y_test = feats["test"]
    figures.unit_histogram(X_test[:, unit["index"]], y_test, out / "unit_histogram.png", unit=unit["index"],
                           title=f"unit {unit['index']} on {len(y_test):,} test reviews")
    short = [i for i in np.argsort([len(t) for t in test], kind="stable") if 60 <= len(test[i]) <= 240]
    picks = [i for c in (1, 0) for i in [j for j in short if y_test[j] == c][:_TRACE_REVIEWS]]
    texts = [test[i] for i in picks]
    values = [unit["sign"] * reader.trace(params, t, unit["index"]) for t in texts]
    figures.unit_text(texts, values, out / "unit_text.png",
                      title=f"unit {unit['index']} along test reviews (green: positive, red: negative)")
    figures.data_efficiency(curves, out / "data_efficiency.png", title="accuracy vs labelled examples",
                            refs={"paper, 4096 units (SST-2)": 0.918})
    return ["unit_histogram.png", "unit_text.png", "unit_text.html", "data_efficiency.png"]


def sample(model: Path, *, n: int, prompt: str, temperature: float, seed: int, unit: int | None,
           value: float | None) -> str:
    """Generated text from seed 0 of a trained LM, optionally with a cell unit clamped."""
    cfg, _, params = load_model(model)
    if (unit is None) != (value is None):
        raise UserError("give --unit and --value together to clamp a unit (or neither).")
    if value is not None and not math.isfinite(value):
        raise UserError(f"--value must be a finite number, got {value}.")
    p = jax.tree.map(lambda x: x[0], params)
    out = lm.generate(p, cfg.hidden, data.preprocess(prompt)[:-1] if prompt else b"\n ", n,
                      jax.random.PRNGKey(seed), temperature=temperature, embed=cfg.embed,
                      clamp=None if unit is None else (unit, value))
    return out.decode("utf-8", errors="replace")


