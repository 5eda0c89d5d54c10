"""Per-seed health (rlx.health): non-finite and diverged seeds are flagged in metrics.jsonl, summary.json, the table
and results.csv, named in a warning, and left out of the statistics, never silently."""

import csv
import json
import math

import numpy as np
import pytest
from cli_runs import rlx

from rlx import config as C
from rlx import envs, health, sweep
from rlx.results import metric_rows, summarize

NAN = float("nan")



def test_q_bound_follows_the_env_reward_and_the_discount():
    cfg = C.Config()
    assert health.q_bound(cfg, envs.make("cartpole")) == pytest.approx(1000.0)  # 10 x 1 / (1 - 0.99)
    scaled = C.apply_overrides(cfg, {"td.gamma": 0.9, "td.reward_scale": 0.1})
    assert health.q_bound(scaled, envs.make("seaquest")) == pytest.approx(100.0)  # 10 x 10 x 0.1 / (1 - 0.9)
    assert "|td.reward_scale| 0.1" in health.bound_rule(scaled, envs.make("seaquest"))
    assert health.q_bound(cfg, envs.make("chain-10")) == pytest.approx(1000.0)
    # an env rlx knows no reward bound of gets only the finiteness check, and says so
    other = envs.make("UmbrellaChain-bsuite")
    assert other.reward_bound is None and health.q_bound(cfg, other) is None
    assert "only non-finite" in health.bound_rule(cfg, other)
    assert health.q_bound(C.apply_overrides(cfg, {"td.gamma": 1.0}), envs.make("cartpole")) is None


def test_check_tells_nonfinite_from_diverged_and_ignores_chunks_without_updates():
    assert health.check(0.5, 40.0, 10, True, 1000.0) == health.OK
    assert health.check(NAN, NAN, 0, True, 1000.0) == health.OK  # no update yet: NaN loss means nothing
    assert health.check(NAN, NAN, 0, False, 1000.0) == health.NONFINITE  # the parameters are
    assert health.check(math.inf, 3e28, 10, True, 1000.0) == health.NONFINITE
    assert health.check(1e6, -2000.0, 10, True, 1000.0) == health.DIVERGED
    assert health.check(1e6, 2000.0, 10, True, None) == health.OK  # no known bound


def test_a_flag_stays_and_nonfinite_outranks_diverged():
    cfgs = [C.Config()]
    t = health.Tracker.start(cfgs, 3, envs.make("cartpole"), {})

    def chunk(q, loss, finite=(True, True, True)):
        t.update({"q_mean": np.array(q), "loss": np.array(loss), "updates": np.array([5.0] * 3)}, np.array(finite))

    chunk([10.0, 5e3, 10.0], [1.0, 1.0, 1.0])
    assert t.status == ["ok", "diverged", "ok"]
    chunk([10.0, 20.0, NAN], [1.0, 1.0, NAN])  # seed 1 came back; seed 2 went NaN
    assert t.status == ["ok", "diverged", "nonfinite"]
    chunk([10.0, NAN, 10.0], [1.0, NAN, 1.0], (True, False, True))
    assert t.status == ["ok", "nonfinite", "nonfinite"]
    # a resumed run starts from the checkpoint's flags
    again = health.Tracker.start(cfgs, 3, envs.make("cartpole"), json.loads(json.dumps(t.meta())))
    assert again.status == t.status and again.q_peak == [10.0, 5e3, 10.0]
    block = again.cell(0)
    assert block["diverged"] == [] and block["nonfinite"] == [1, 2] and block["q_bound"] == pytest.approx(1000.0)


def test_statistics_leave_unhealthy_seeds_out_and_say_so():
    s = summarize([100.0, 9.0, 200.0], healthy=[True, False, True])
    assert s["mean"] == pytest.approx(150.0) and s["per_seed"] == [100.0, 9.0, 200.0]
    none = summarize([9.0, 9.0], healthy=[False, False])
    assert none["mean"] is None and none["iqm"] is None and none["ci95"] == [None, None]
    h = health.block(["ok", "diverged", "nonfinite"], 1000.0, "10 x ...", [50.0, 3e28, 7.0])
    assert health.note(h) == " (2 excluded)" and health.status_text(h) == "diverged: 1; non-finite: 2"
    line = health.warning(h)
    assert line.startswith("rlx: warning: seed 1 diverged (|mean Q| 3e+28 > bound 1000")
    assert "seed 2 went non-finite" in line and "over the other 1 of 3" in line
    assert health.warning(health.block(["ok", "ok"], 1000.0)) is None and health.note(None) == ""
    all_bad = health.block(["nonfinite", "diverged"], 1000.0, "r", [1.0, 2e9])
    assert health.note(all_bad) == " (all 2 excluded)" and "every seed failed" in health.warning(all_bad)


def test_metric_rows_carry_each_seeds_health():
    m = {"loss": np.array([1.0, 2.0])}
    rows = metric_rows(m, np.ones((2, 3)), 1000, 1, 2, health=["ok", "diverged"])
    assert [r["health"] for r in rows] == ["ok", "diverged"]
    assert "health" not in metric_rows(m, np.ones((2, 3)), 1000, 1, 2)[0]


def test_results_csv_and_table_carry_the_flags(tmp_path):
    h = health.block(["ok", "diverged", "ok"], 1000.0, "r", [1.0, 5e3, 2.0])
    ev = summarize([100.0, 9.0, 200.0], healthy=health.healthy(h, 3))
    cell = {"cell": 0, "labels": {"lr": 1.0}, "env": "cartpole", "steps": 10, "eval_return": ev, "stats": {}, "health": h}
    sweep.write_csv(tmp_path / "results.csv", [cell], ["lr"], [])
    with open(tmp_path / "results.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["healthy_seeds"], row["diverged"], row["nonfinite"]) == ("2", "1", "")
    assert float(row["mean"]) == pytest.approx(150.0)
    table = sweep.table_rows({"cells": [cell]}, ["lr"])[0]
    assert table[2] == "diverged: 1" and table[3].endswith("(1 excluded)")
    assert sweep.health_warnings({"cells": [cell]}, ["lr"])[0].startswith("rlx: warning: lr=1.0: seed 1 diverged")
    # aggregates and comparisons see the healthy seeds only
    assert np.isnan(sweep.final_scores(cell)[1]) and sweep.final_scores(cell)[0] == 100.0


DIVERGE = ["--seeds", 2, "--steps", 4000, "--set", "optim.lr=1e3", "--set", "optim.max_grad_norm=1e9",
           "--set", "eval.every=1000", "--set", "dqn.learning_starts=500", "--set", "diag.enabled=false",
           "--set", "eval.episodes=3"]  # fmt: skip


@pytest.mark.slow
def test_a_diverging_run_is_flagged_and_named(tmp_path, capsys):
    """The issue's command, scaled down: lr 1e3 without clipping. Before, it ended with the usual table."""
    rc, out, err = rlx(capsys, "train", "cartpole", *DIVERGE, "--out", tmp_path, "--name", "d")
    assert rc == 0, err
    warning = [line for line in err.splitlines() if line.startswith("rlx: warning:")]
    assert len(warning) == 1 and "seeds 0 1" in warning[0], err
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    h = summary["health"]
    assert sorted(h["diverged"] + h["nonfinite"]) == [0, 1] and "ok" not in h["per_seed"]
    assert h["q_bound"] == pytest.approx(1000.0) and "td.gamma 0.99" in h["q_bound_rule"]
    assert summary["eval_return"]["mean"] is None  # no statistic of failed seeds
    assert "all 2 excluded" in out
    rows = [json.loads(line) for line in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in rows if r["steps"] == 4000]
    assert [r["health"] for r in last] == h["per_seed"]
