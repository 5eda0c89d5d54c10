"""`rlx train --resume --steps N` past the run's budget: continues it to N, records N, and refuses a schedule that
spans the old budget; a smaller N is refused as before."""

import json
from pathlib import Path

import pytest
from cli_runs import metrics, rlx

from rlx import config as C

TINY = ["--seeds", 2, "--set", "eval.every=1000", "--set", "dqn.learning_starts=500", "--set", "diag.enabled=false",
        "--set", "dqn.buffer_size=2000", "--set", "dqn.batch_size=32", "--set", "eval.episodes=3",
        "--set", "explore.eps_decay_steps=3000"]  # fmt: skip




@pytest.mark.slow
def test_a_finished_run_extended_to_2n_equals_a_run_of_2n(tmp_path, capsys):
    rc, _, err = rlx(capsys, "train", "cartpole", *TINY, "--steps", 2000, "--out", tmp_path, "--name", "ext")
    assert rc == 0, err
    run = tmp_path / "ext"
    rc, out, err = rlx(capsys, "train", "cartpole", "--resume", "--steps", 4000, "--out", tmp_path, "--name", "ext")
    assert rc == 0, err
    assert "past its budget of 2,000 steps to 4,000" in out
    rows = metrics(run)
    assert sorted({r["steps"] for r in rows}) == [1000, 2000, 3000, 4000] and len(rows) == 2 * 4
    assert json.loads((run / "config.json").read_text())["config"]["steps"] == 4000
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4000 and summary["health"]["per_seed"] == ["ok", "ok"]
    # eps-greedy CartPole has no schedule tied to the budget: the extended run is the run of 4000 from scratch
    rc, _, err = rlx(capsys, "train", "cartpole", *TINY, "--steps", 4000, "--out", tmp_path, "--name", "whole")
    assert rc == 0, err
    assert rows == metrics(tmp_path / "whole")
    assert summary["eval_return"] == json.loads((tmp_path / "whole" / "summary.json").read_text())["eval_return"]


def _saved_run(path: Path, **settings) -> str:
    """A run directory holding only the config.json `rlx train` wrote; returns that file's text."""
    path.mkdir(parents=True)
    text = json.dumps({"config": C.to_dict(C.apply_overrides(C.Config(), {"steps": 4000, **settings})), "seeds": 2})
    (path / "config.json").write_text(text)
    return text


def test_extending_a_run_whose_lr_decays_over_its_budget_is_refused(tmp_path, capsys):
    text = _saved_run(tmp_path / "d", **{"optim.lr_decay": True})
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--steps", 8000, "--out", tmp_path, "--name", "d")
    assert rc == 2 and err.count("\n") == 1
    assert "optim.lr_decay" in err and "budget of 4,000 steps" in err and "new --name with --steps 8,000" in err
    assert (tmp_path / "d" / "config.json").read_text() == text


def test_a_smaller_steps_on_resume_is_refused_as_before(tmp_path, capsys):
    text = _saved_run(tmp_path / "s")
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--steps", 2000, "--out", tmp_path, "--name", "s")
    assert rc == 2 and "steps differ from the run" in err
    assert (tmp_path / "s" / "config.json").read_text() == text
