"""The sentiment-neuron commands: `rlx probe-sentiment`, `rlx generate` and `rlx data fetch`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from rlx import config as C
from rlx.errors import UserError
from rlx.terminal import console, err_console, say, with_progress


def register(app: typer.Typer) -> None:
    """Add the sentiment commands to the `rlx` app."""
    app.command("probe-sentiment")(probe_sentiment)
    app.command("generate")(generate_cmd)
    data_app = typer.Typer(help="Datasets rlx uses (fetched from the package index, cached).", no_args_is_help=True)
    data_app.command("fetch")(data_fetch)
    app.add_typer(data_app, name="data")


def data_fetch(force: bool = typer.Option(False, "--force", help="Download again even if the cached copy verifies.")):
    """Download the labelled movie-review snippets (vaderSentiment 3.3.2's sdist) into the cache and verify them."""
    from rlx.sentiment import data

    where = data.fetch(force=force)
    splits = data.default_splits()
    console.print(f"sentiment data in {where}: {len(splits.train):,} train / {len(splits.dev):,} dev / "
                  f"{len(splits.test):,} test reviews")


def _lm_settings(experiment: str | None, hidden: int | None, steps: int | None, sets: list[str] | None):
    """(the LM settings given explicitly: the experiment module's, then --set, then --hidden/--steps; the experiment)."""
    from rlx.experiment import SentimentExperiment, load

    exp = load(experiment, SentimentExperiment) if experiment else SentimentExperiment(name="probe-sentiment")
    flags = {k: v for k, v in (("hidden", hidden), ("steps", steps)) if v is not None}
    given = {**exp.lm, **C.parse_set(sets or []), **flags}
    return {k.removeprefix("lm."): v for k, v in given.items()}, exp


def probe_sentiment(
    hidden: int | None = typer.Option(None, "--hidden", help="mLSTM units (default 128 on the CPU default; 64 … 4096)."),
    steps: int | None = typer.Option(None, "--steps", help="LM optimizer updates (each reads batch × window bytes)."),
    seeds: int | None = typer.Option(None, "--seeds", help="Language models trained together in one vmapped program."),
    corpus: Path | None = typer.Option(None, "--corpus", help="Unlabelled training text, one document per line (streamed)."),
    labelled: Path | None = typer.Option(None, "--data", help="Labelled reviews: CSV/TSV with text and label columns, "
                                         "or a folder with pos/ and neg/ (default: the movie-review snippets)."),
    model: Path | None = typer.Option(None, "--model", help="Probe the LM of an earlier run directory instead of training."),
    sets: list[str] | None = typer.Option(None, "--set", help="LM setting, e.g. --set lr=1e-3 --set window=128 (repeatable)."),
    reps: int | None = typer.Option(None, "--reps", help="Subsamples per size in the data-efficiency curve (default 10)."),
    experiment: str | None = typer.Option(None, "--experiment", help="A sentiment experiment module, e.g. sentiment_neuron."),
    out: Path = typer.Option(Path("runs"), "--out", help="Directory that holds run directories."),
    name: str | None = typer.Option(None, "--name", help="Run directory name (default: sentiment-timestamp)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the LM training of --out/--name from its checkpoint."),
):
    """Train a byte-level mLSTM LM, find its sentiment unit with an L1 probe, and compare with the controls."""
    from rlx import loop
    from rlx.results import open_run, reconcile
    from rlx.sentiment import lm, study

    loop.enable_compile_cache()
    given, exp = _lm_settings(experiment, hidden, steps, sets)
    cfg = lm.config_from(given)
    n_seeds = seeds if seeds is not None else exp.seeds
    n_reps = reps if reps is not None else exp.reps
    if n_seeds <= 0 or n_reps <= 0:
        raise UserError(f"--seeds and --reps must be positive, got {n_seeds} and {n_reps}.")
    if model is not None and (resume or corpus is not None):
        raise UserError("--model probes a trained LM: drop --resume and --corpus (they are for training one).")
    for flag, p in (("--corpus", corpus), ("--data", labelled), ("--model", model)):
        if p is not None and not p.exists():
            raise UserError(f"{flag} {p} does not exist.")
    run_dir = open_run(out, name, "sentiment", resume=resume)
    if resume:  # the saved LM, seeds, corpus and labelled data win (labelled data given again if none was saved)
        cfg, n_seeds, saved = reconcile(run_dir, "lm", lm.config_from, given, seeds=seeds)
        corpus = Path(saved["corpus"]) if saved.get("corpus") else None
        labelled = Path(saved["data"]) if saved.get("data") else labelled
    else:
        run_dir.write_config({"lm": C.to_dict(cfg), "seeds": n_seeds, "corpus": corpus, "data": labelled,
                              "model": model})
    what = f"probing {model}" if model else f"hidden={cfg.hidden} steps={cfg.steps:,} seeds={n_seeds}"
    console.print(f"[bold]rlx probe-sentiment[/] {what} → {run_dir.path}")

    def go(on_chunk=None):
        return study.run(cfg, run_dir, seeds=n_seeds, corpus=corpus, labelled=labelled, model=model, resume=resume,
                         reps=n_reps, on_chunk=on_chunk, say=say)

    try:
        summary = go() if model else with_progress(cfg.steps, go, unit="updates", progress=_bits_per_byte)
    except loop.Interrupted as e:
        err_console.print(f"rlx: {e}; continue with `rlx probe-sentiment --resume --name {run_dir.path.name} --out {out}`")
        raise typer.Exit(130) from None
    _print_sentiment(summary, run_dir.path)


def _bits_per_byte(rows) -> str:
    import numpy as np

    return f"train {np.mean([r['bits_per_byte'] for r in rows]):.3f} bits/byte"


def _print_sentiment(s: dict, path: Path):
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    table = Table(title=f"sentiment probe: {s['n_train']:,} train / {s['n_test']:,} test reviews, "
                        f"LM hidden {s['lm']['hidden']}, {s['lm']['steps']:,} updates, "
                        f"{s['lm']['bits_per_byte']:.3f} bits/byte on dev")
    for col in ("features", "test accuracy", "non-zero weights", "unit", "unit alone"):
        table.add_column(col)
    fp, u, c = s["full_probe"], s["unit"], s["controls"]
    table.add_row("trained LM cell state", pct(fp["accuracy"]), str(fp["nonzero"]),
                  f"{u['index']} ({'+' if u['sign'] > 0 else '−'})", pct(u["accuracy"]))
    table.add_row("random-init LM (control)", pct(c["random_init_full"]), "", "", pct(c["random_init_unit"]))
    table.add_row("bag of bytes (control)", pct(c["bag_of_bytes"]), "", "", "")
    console.print(table)
    if "mean_over_seeds" in s:
        m = s["mean_over_seeds"]
        console.print(f"mean over {s['lm']['seeds']} seeds: full probe {pct(m['full_probe_accuracy'])}, "
                      f"unit alone {pct(m['unit_accuracy'])}")
    console.print(f"run directory: {path} (summary.json, {', '.join(s['figures'])})")


def generate_cmd(
    model: Path = typer.Argument(..., help="Run directory of an earlier `rlx probe-sentiment`."),
    n: int = typer.Option(200, "--bytes", help="How many bytes to sample."),
    prompt: str = typer.Option("", "--prompt", help="Text the sample continues (preprocessed like a review)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Softmax temperature (> 0)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    sentiment: str | None = typer.Option(None, "--sentiment", help="Clamp the run's sentiment unit: positive or negative."),
    unit: int | None = typer.Option(None, "--unit", help="Clamp this cell unit (with --value)."),
    value: float | None = typer.Option(None, "--value", help="The value the clamped unit is held at."),
):
    """Sample text from a trained LM, optionally with its sentiment unit held positive or negative."""
    from rlx.sentiment import study

    if sentiment is not None:
        unit, value = _clamp(model, sentiment, unit, value)
    text = study.sample(model, n=n, prompt=prompt, temperature=temperature, seed=seed, unit=unit, value=value)
    console.print(prompt + text, markup=False, highlight=False)


def _clamp(model: Path, sentiment: str, unit: int | None, value: float | None) -> tuple[int, float]:
    """(unit, value) that holds the sentiment unit of `model`'s summary.json positive or negative."""
    if sentiment not in ("positive", "negative"):
        raise UserError(f"--sentiment must be positive or negative, got {sentiment!r}.")
    if unit is not None or value is not None:
        raise UserError("give --sentiment, or --unit with --value, not both.")
    try:
        summ = json.loads((model / "summary.json").read_text())
        return summ["unit"]["index"], summ["unit"]["clamp"][sentiment]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"--sentiment needs {model}/summary.json from a finished `rlx probe-sentiment`; "
                        "or give --unit and --value.") from None
