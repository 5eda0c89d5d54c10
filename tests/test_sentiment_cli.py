"""`rlx probe-sentiment`, `rlx generate` and `rlx data fetch` end to end on tiny settings, and their errors."""

import json
import re

import pytest
from cli_runs import rlx
from synthetic_reviews import reviews

from rlx.cli import main

TINY = ["--hidden", "16", "--steps", "20", "--set", "batch=8", "--set", "window=16", "--set", "chunk=10",
        "--reps", "2"]

PROBE_OPTIONS = {
    "--hidden": "test_probe_sentiment_writes_summary_and_figures",
    "--steps": "test_probe_sentiment_writes_summary_and_figures",
    "--set": "test_probe_sentiment_writes_summary_and_figures",
    "--reps": "test_probe_sentiment_writes_summary_and_figures",
    "--corpus": "test_probe_sentiment_writes_summary_and_figures",
    "--data": "test_probe_sentiment_writes_summary_and_figures",
    "--out": "test_probe_sentiment_writes_summary_and_figures",
    "--name": "test_probe_sentiment_writes_summary_and_figures",
    "--seeds": "test_two_seeds_are_probed_and_averaged",
    "--model": "test_model_probes_an_earlier_run_and_generate_samples",
    "--resume": "test_resume_of_a_finished_run_probes_it_again",
    "--experiment": "test_experiment_module_sets_the_language_model",
    "--help": "test_every_probe_option_is_exercised",
}
GENERATE_OPTIONS = {"--bytes", "--prompt", "--temperature", "--seed", "--sentiment", "--unit", "--value", "--help"}



@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sentiment")
    texts, labels = reviews(2000, 0)
    (d / "corpus.txt").write_text("\n".join(texts) + "\n")
    texts, labels = reviews(240, 1)
    rows = ["text,label"] + [f'"{t}",{"pos" if y else "neg"}' for t, y in zip(texts, labels, strict=True)]
    (d / "labelled.csv").write_text("\n".join(rows) + "\n")
    return d


@pytest.fixture(scope="module")
def run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    rc = main(["probe-sentiment", *TINY, "--corpus", str(files / "corpus.txt"), "--data", str(files / "labelled.csv"),
               "--out", str(out), "--name", "tiny"])
    assert rc == 0
    return out / "tiny"


def _options(help_text):
    return set(re.findall(r"(--[a-z][a-z-]*)", help_text))


def test_every_probe_option_is_exercised(capsys):
    rc, out, _ = rlx(capsys, "probe-sentiment", "--help")
    assert rc == 0
    assert _options(out) == set(PROBE_OPTIONS)
    rc, out, _ = rlx(capsys, "generate", "--help")
    assert rc == 0 and _options(out) == GENERATE_OPTIONS


@pytest.mark.slow
def test_probe_sentiment_writes_summary_and_figures(run):
    s = json.loads((run / "summary.json").read_text())
    assert set(s["full_probe"]) >= {"accuracy", "nonzero"}
    assert set(s["unit"]) >= {"index", "accuracy", "sign"}
    assert set(s["controls"]) == {"random_init_full", "random_init_unit", "bag_of_bytes"}
    assert set(s["lm"]) >= {"hidden", "steps", "bits_per_byte"}
    assert s["lm"]["hidden"] == 16 and s["lm"]["steps"] == 20
    assert s["n_train"] + s["n_dev"] + s["n_test"] == 240
    assert 0 <= s["unit"]["index"] < 16 and s["unit"]["sign"] in (-1, 1)
    assert 0.0 <= s["full_probe"]["accuracy"] <= 1.0
    assert 0 < s["lm"]["bits_per_byte"] < 8
    for f in ("unit_histogram.png", "unit_text.png", "unit_text.html", "data_efficiency.png"):
        assert (run / f).stat().st_size > 1000, f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["lm"]["batch"] == 8 and cfg["lm"]["window"] == 16
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["steps"] for m in metrics] == [10, 20]


@pytest.mark.slow
def test_model_probes_an_earlier_run_and_generate_samples(run, files, tmp_path, capsys):
    rc, out, err = rlx(capsys, "probe-sentiment", "--model", run, "--data", files / "labelled.csv", "--reps", "2",
                       "--out", tmp_path, "--name", "again")
    assert rc == 0, err
    a = json.loads((run / "summary.json").read_text())
    b = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert a["full_probe"] == b["full_probe"] and a["unit"] == b["unit"]  # same LM, same data: same probe
    assert "trained LM cell state" in out
    rc, out, _ = rlx(capsys, "generate", run, "--bytes", "40", "--seed", "3", "--sentiment", "positive")
    rc2, out2, _ = rlx(capsys, "generate", run, "--bytes", "40", "--seed", "3", "--sentiment", "negative")
    assert rc == rc2 == 0 and out != out2
    rc, out, _ = rlx(capsys, "generate", run, "--bytes", "40", "--prompt", "the film", "--temperature", "0.5",
                     "--unit", "2", "--value", "1.5")
    assert rc == 0 and out.startswith("the film")
    for bad, msg in ((["--sentiment", "happy"], "positive or negative"), (["--unit", "2"], "together"),
                     (["--unit", "99", "--value", "1"], "does not exist"), (["--temperature", "0"], "positive"),
                     (["--bytes", "0"], "positive")):
        rc, _, err = rlx(capsys, "generate", run, *bad)
        assert rc == 2 and msg in err and len(err.strip().splitlines()) == 1, (bad, err)


@pytest.mark.slow
def test_resume_of_a_finished_run_probes_it_again(run, capsys):
    before = json.loads((run / "summary.json").read_text())
    config = (run / "config.json").read_text()
    # settings given again must agree with the saved ones: differing ones are named and nothing changes on disk
    rc, _, err = rlx(capsys, "probe-sentiment", "--resume", "--hidden", "32", "--set", "lm.lr=1e-3", "--seeds", "2",
                     "--out", run.parent, "--name", run.name)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert all(k in err for k in ("hidden", "lr", "seeds")) and "drop those settings or start a new --name" in err
    assert (run / "config.json").read_text() == config and json.loads((run / "summary.json").read_text()) == before
    # agreeing ones (with or without the lm. prefix) are accepted
    rc, _, err = rlx(capsys, "probe-sentiment", "--resume", "--hidden", "16", "--set", "lm.batch=8", "--seeds", "1",
                     "--out", run.parent, "--name", run.name)
    assert rc == 0, err
    after = json.loads((run / "summary.json").read_text())
    assert after["full_probe"] == before["full_probe"] and after["lm"]["steps"] == 20
    rc, _, err = rlx(capsys, "probe-sentiment", "--resume", "--out", run.parent)  # the newest sentiment-* run: none
    assert rc == 2 and "nothing to resume: no run named sentiment-*" in err


@pytest.mark.slow
def test_two_seeds_are_probed_and_averaged(files, tmp_path, capsys):
    rc, out, err = rlx(capsys, "probe-sentiment", *TINY, "--seeds", "2", "--corpus", files / "corpus.txt",
                       "--data", files / "labelled.csv", "--out", tmp_path, "--name", "two")
    assert rc == 0, err
    s = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert [r["seed"] for r in s["per_seed"]] == [0, 1]
    assert s["per_seed"][0]["dev_bits_per_byte"] != s["per_seed"][1]["dev_bits_per_byte"]
    assert "mean over 2 seeds" in out


@pytest.mark.slow
def test_experiment_module_sets_the_language_model(files, tmp_path, capsys):
    rc, _, err = rlx(capsys, "probe-sentiment", "--experiment", "sentiment_neuron", *TINY, "--corpus",
                     files / "corpus.txt", "--data", files / "labelled.csv", "--out", tmp_path, "--name", "exp")
    assert rc == 0, err
    cfg = json.loads((tmp_path / "exp" / "config.json").read_text())["lm"]
    assert cfg["lr"] == 5e-4 and cfg["hidden"] == 16  # the module's lr, the flag's hidden


@pytest.mark.parametrize(
    "args, message",
    [
        (["--corpus", "/nonexistent/corpus.txt"], "does not exist"),
        (["--set", "bogus=1"], "unknown .*bogus"),
        (["--set", "batch=many"], "batch .*int.*'many'"),
        (["--hidden", "0"], "hidden must be positive"),
        (["--seeds", "0"], "must be positive"),
        (["--model", "/nonexistent/run"], "does not exist"),
        (["--experiment", "cartpole"], "is an RL experiment"),
        (["--experiment", "nope"], "unknown experiment"),
        (["--out", "/proc/rlx-cannot-write"], "cannot write"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path):
    extra = [] if "--out" in args else ["--out", tmp_path]
    rc, _, err = rlx(capsys, "probe-sentiment", *args, *extra)
    assert rc == 2, err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1, err


def test_model_that_is_not_a_run_and_sweep_of_a_sentiment_study(tmp_path, capsys):
    rc, _, err = rlx(capsys, "probe-sentiment", "--model", tmp_path, "--out", tmp_path)
    assert rc == 2 and "no config.json" in err
    rc, _, err = rlx(capsys, "sweep", "sentiment_neuron", "--out", tmp_path)
    assert rc == 2 and "rlx probe-sentiment --experiment sentiment_neuron" in err
    rc, out, _ = rlx(capsys, "list")
    assert rc == 0 and "sentiment_neuron" in out


def test_resume_of_a_train_run_is_refused(tmp_path, capsys):
    from rlx import config as C

    (tmp_path / "rl").mkdir()
    (tmp_path / "rl" / "config.json").write_text(json.dumps({"config": C.to_dict(C.Config()), "seeds": 1}))
    rc, _, err = rlx(capsys, "probe-sentiment", "--resume", "--out", tmp_path, "--name", "rl")
    assert rc == 2 and "is not a run of this command (its config.json has no 'lm')" in err, err


def test_data_fetch_reports_the_default_splits(capsys):
    rc, out, err = rlx(capsys, "data", "fetch")
    assert rc == 0, err
    assert "6,920 train / 872 dev / 2,776 test" in out
