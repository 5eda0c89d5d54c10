"""Statistics across seeds, the run directory, and learning-curve plots."""

import json
import math
import os

import numpy as np
import pytest

from rlx.errors import UserError
from rlx.plots import curve, learning_curves
from rlx.results import RunDir, bootstrap_ci, iqm, summarize

# ------------------------------------------------------------------------------------ statistics


def test_iqm_is_mean_of_middle_half():
    assert iqm(np.arange(1, 9)) == 4.5  # mean of [3, 4, 5, 6]
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # order does not matter


def test_iqm_matches_trim_mean_cut_for_uneven_sizes():
    # trim_mean(x, 0.25) trims int(0.25 * n) from each end: n=5 trims 1, n<4 trims none.
    assert iqm([1, 2, 3, 4, 100]) == pytest.approx(3.0)
    assert iqm([1, 2, 30]) == pytest.approx(11.0)
    assert iqm([7.0]) == 7.0


def test_iqm_robust_to_outlier():
    x = np.arange(1.0, 9.0)
    x[-1] = 1e9
    assert iqm(x) == 4.5
    assert np.mean(x) > 1e8


def test_iqm_of_constant():
    assert iqm(np.full(7, 3.25)) == 3.25


def test_bootstrap_ci_contains_mean_and_is_deterministic():
    x = np.random.default_rng(1).normal(10.0, 2.0, size=12)
    lo, hi = bootstrap_ci(x, seed=3)
    assert lo < x.mean() < hi
    assert bootstrap_ci(x, seed=3) == (lo, hi)
    assert bootstrap_ci(x, seed=4) != (lo, hi)


def test_bootstrap_ci_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=5), rng.normal(size=200)
    w_small = np.subtract(*bootstrap_ci(small)[::-1])
    w_large = np.subtract(*bootstrap_ci(large)[::-1])
    assert 0 < w_large < w_small / 2


def test_bootstrap_ci_accepts_other_statistics():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1000.0]
    _, hi = bootstrap_ci(x, stat=iqm)
    assert hi < 1000.0  # the IQM's CI is not dragged up by the outlier the way the mean's is
    assert bootstrap_ci(x)[1] > hi


def test_bootstrap_ci_single_seed_is_degenerate():
    assert bootstrap_ci([4.5]) == (4.5, 4.5)


def test_summarize_is_plain_json():
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))
    assert set(s) == {"mean", "iqm", "ci95", "per_seed"}
    assert s["mean"] == 2.5 and s["iqm"] == 2.5
    assert type(s["mean"]) is float and type(s["iqm"]) is float
    assert all(type(v) is float for v in s["ci95"] + s["per_seed"])
    assert s["ci95"][0] <= 2.5 <= s["ci95"][1]
    assert json.loads(json.dumps(s, allow_nan=False)) == s


def test_summarize_leaves_out_diverged_seeds():
    s = summarize([1.0, float("nan"), 3.0])
    assert s["mean"] == 2.0
    assert s["per_seed"] == [1.0, None, 3.0]
    json.dumps(s, allow_nan=False)
    empty = summarize([float("nan")])
    assert empty["mean"] is None and empty["ci95"] == [None, None]


# ------------------------------------------------------------------------------------ RunDir


def test_rundir_creates_directory(tmp_path):
    run = RunDir(tmp_path / "runs" / "a")
    assert run.path.is_dir()
    assert run.checkpoint_dir == tmp_path / "runs" / "a" / "checkpoints"
    assert list(run.path.iterdir()) == []  # the write probe cleans up after itself


def test_rundir_unwritable_raises_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=r"cannot write to .*--out"):
        RunDir(blocker / "run")


def test_rundir_probe_failure_raises_user_error(tmp_path, monkeypatch):
    # The directory exists but refuses new files (read-only mount, quota): the probe must catch it,
    # even when tests run as root and chmod would not.
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("rlx.results.tempfile.mkstemp", refuse)
    with pytest.raises(UserError, match="cannot write to .*Permission denied; pass --out"):
        RunDir(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_rundir_read_only_existing_dir_raises(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot write to"):
            RunDir(ro)
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("existing", ["metrics.jsonl", "summary.json"])
def test_rundir_refuses_to_overwrite_results(tmp_path, existing):
    (tmp_path / existing).write_text("{}\n")
    with pytest.raises(UserError, match="--resume"):
        RunDir(tmp_path)


def test_rundir_resume_without_config_raises(tmp_path):
    with pytest.raises(UserError, match="nothing to resume"):
        RunDir(tmp_path / "never-ran", resume=True)
    assert not (tmp_path / "never-ran").exists()


def test_rundir_resume_continues_existing_run(tmp_path):
    run = RunDir(tmp_path)
    run.write_config({"lr": 1e-3, "hidden": (64, 64), "gamma": np.float32(0.99)})
    run.append_metrics([{"seed": 0, "steps": 10, "eval_return": 1.0}])
    again = RunDir(tmp_path, resume=True)
    cfg = again.read_config()
    assert cfg["hidden"] == [64, 64] and cfg["lr"] == 1e-3
    assert cfg["gamma"] == pytest.approx(0.99)
    assert again.read_metrics() == [{"seed": 0, "steps": 10, "eval_return": 1.0}]


def test_config_round_trip_and_atomic(tmp_path):
    run = RunDir(tmp_path)
    run.write_config({"a": 1})
    run.write_config({"a": 2, "b": {"c": None}})
    assert run.read_config() == {"a": 2, "b": {"c": None}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temp files left


def test_read_config_missing_or_corrupt(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(UserError, match="no config.json"):
        run.read_config()
    (tmp_path / "config.json").write_text('{"lr": 0.1,')
    with pytest.raises(UserError, match="corrupt config.json"):
        run.read_config()
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="corrupt config.json"):
        run.read_config()


def test_metrics_round_trip_writes_nan_as_null(tmp_path):
    run = RunDir(tmp_path)
    rows = [
        {"seed": 0, "chunk": 0, "steps": 100, "eval_return": 1.5, "loss": float("nan")},
        {"seed": 1, "chunk": 0, "steps": 100, "eval_return": None, "loss": np.float32(0.25)},
    ]
    run.append_metrics(rows[:1])
    run.append_metrics(rows[1:])
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = run.read_metrics()
    assert back[0] == {"seed": 0, "chunk": 0, "steps": 100, "eval_return": 1.5, "loss": None}
    assert back[1]["eval_return"] is None and back[1]["loss"] == 0.25


def test_read_metrics_empty_when_no_file(tmp_path):
    assert RunDir(tmp_path).read_metrics() == []


def test_torn_final_line_is_skipped_and_repaired_on_append(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics([{"seed": 0, "steps": 1}, {"seed": 0, "steps": 2}])
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"seed": 0, "st')  # killed mid-write
    assert [r["steps"] for r in run.read_metrics()] == [1, 2]
    run.append_metrics([{"seed": 0, "steps": 3}])
    assert [r["steps"] for r in run.read_metrics()] == [1, 2, 3]


def test_corruption_before_the_last_line_raises(tmp_path):
    run = RunDir(tmp_path)
    (tmp_path / "metrics.jsonl").write_text('{"steps": 1}\nnot json\n{"steps": 3}\n')
    with pytest.raises(UserError, match="line 2"):
        run.read_metrics()


def test_truncate_metrics_keeps_rows_up_to_step(tmp_path):
    run = RunDir(tmp_path)
    run.append_metrics([{"seed": s, "steps": t} for t in (100, 200, 300) for s in (0, 1)])
    run.truncate_metrics(200)
    assert [(r["seed"], r["steps"]) for r in run.read_metrics()] == [(0, 100), (1, 100), (0, 200), (1, 200)]
    run.truncate_metrics(0)
    assert run.read_metrics() == []


def test_write_summary(tmp_path):
    run = RunDir(tmp_path)
    run.write_summary({"eval_return": summarize([1.0, 2.0]), "sps": float("inf")})
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["eval_return"]["mean"] == 1.5 and s["sps"] is None
    with pytest.raises(UserError, match="--resume"):
        RunDir(tmp_path)


# ------------------------------------------------------------------------------------ plots


def _rows(n_seeds=3, n_chunks=5):
    return [
        {"seed": s, "chunk": c, "steps": (c + 1) * 1000, "eval_return": float(c * 10 + s), "return_mean": c + 0.5,
         "loss": None}
        for s in range(n_seeds)
        for c in range(n_chunks)
    ]


def test_learning_curves_writes_png(tmp_path):
    out = learning_curves(_rows(), tmp_path / "curves.png", title="chain-30")
    assert out == tmp_path / "curves.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_learning_curves_skips_all_none_key(tmp_path):
    rows = _rows()
    assert curve(rows, "loss") is None
    assert curve(rows, "absent") is None
    out = learning_curves(rows, tmp_path / "c.png", keys=("loss", "eval_return"))
    assert out.stat().st_size > 0
    nothing = learning_curves(rows, tmp_path / "none.png", keys=("loss",))
    assert nothing.read_bytes()[:4] == b"\x89PNG"


def test_curve_statistics_across_seeds_with_missing_rows():
    rows = _rows(n_seeds=4, n_chunks=3)
    rows = [r for r in rows if not (r["seed"] == 3 and r["chunk"] == 2)]  # seed 3 died early
    rows.append({"seed": 0, "steps": 500, "eval_return": float("nan")})
    c = curve(rows, "eval_return")
    assert c["n_seeds"] == 4
    assert list(c["steps"]) == [1000, 2000, 3000]  # the NaN-only step is dropped
    np.testing.assert_allclose(c["mean"], [1.5, 11.5, 21.0])  # last step: seeds 0-2 only
    np.testing.assert_allclose(c["lo"], [0, 10, 20])
    np.testing.assert_allclose(c["hi"], [3, 13, 22])
    assert all(c["q25"] <= c["mean"]) and all(c["mean"] <= c["q75"])
    assert not any(math.isnan(v) for v in c["mean"])
