"""Statistics across seeds and envs (rliable), the run directory, and learning-curve plots."""

import json
import math
import os

import numpy as np
import pytest

from rlx import plots, results
from rlx.errors import UserError
from rlx.plots import curve, learning_curves
from rlx.results import (
    BOOTSTRAP_SEED,
    STATISTICS,
    RunDir,
    aggregate,
    improvement,
    performance_profiles,
    score_matrix,
    summarize,
)

# ------------------------------------------------------------------------------------ statistics (rliable)


def _rliable(scores, func):
    """rliable called directly, seeded the way rlx seeds it (see results._seeded_bootstrap)."""
    from rliable import library

    np.random.seed(BOOTSTRAP_SEED)
    point, ci = library.get_interval_estimates({"x": scores}, func, reps=results.bootstrap_reps())
    return np.atleast_1d(point["x"]), np.asarray(ci["x"]).reshape(2, -1)


def test_summarize_agrees_with_rliable_called_directly():
    from rliable import metrics

    x = np.random.default_rng(1).normal(300.0, 80.0, size=10)
    s = summarize(x, optimal_return=400.0)
    point, ci = _rliable(x[:, None], lambda m: np.array([metrics.aggregate_mean(m), np.median(m),
                                                         metrics.aggregate_iqm(m),
                                                         metrics.aggregate_optimality_gap(m, 400.0)]))
    for i, name in enumerate(STATISTICS):
        assert s[name] == point[i]
        assert s["cis"][name] == [ci[0, i], ci[1, i]]
    assert s["ci95"] == s["cis"]["mean"]  # the table's CI is the mean's, as before rliable
    assert s["mean"] == pytest.approx(x.mean()) and s["median"] == pytest.approx(np.median(x))
    assert s["optimality_gap"] == pytest.approx(400.0 - np.minimum(x, 400.0).mean())
    assert s["cis"]["iqm"][0] < s["iqm"] < s["cis"]["iqm"][1]


def test_bootstrap_reps_come_from_the_environment(monkeypatch):
    assert results.bootstrap_reps() == 100  # the fixture's, which the agreement tests above rely on too
    monkeypatch.delenv("RLX_BOOTSTRAP_REPS")
    assert results.bootstrap_reps() == results.BOOTSTRAP_REPS == 2000
    monkeypatch.setenv("RLX_BOOTSTRAP_REPS", "0")
    with pytest.raises(UserError, match="RLX_BOOTSTRAP_REPS must be a positive integer"):
        results.bootstrap_reps()


def test_summarize_point_estimates():
    s = summarize([8, 1, 7, 2, 6, 3, 5, 1e9])
    assert s["iqm"] == 5.25  # mean of the middle half [3, 5, 6, 7]: the outlier does not move it
    assert s["mean"] > 1e8 and s["median"] == 5.5
    assert s["optimality_gap"] is None and s["cis"]["optimality_gap"] == [None, None]  # no optimum known
    assert summarize([1, 2, 30])["iqm"] == pytest.approx(11.0)  # trim_mean trims int(n / 4): nothing below 4


def test_summarize_is_deterministic_and_leaves_the_global_rng_alone():
    x = np.random.default_rng(2).normal(size=12)
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    first = summarize(x, optimal_return=1.0)
    assert np.random.rand() == expected  # the seeded bootstrap restores the caller's RNG state
    aggregate([x, x + 1], [None, None])  # another bootstrap in between changes nothing
    assert summarize(x, optimal_return=1.0) == first


def test_summarize_is_plain_json():
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32))
    assert set(s) == {"mean", "median", "iqm", "optimality_gap", "cis", "ci95", "per_seed"}
    assert s["mean"] == 2.5 and s["iqm"] == 2.5 and s["median"] == 2.5
    assert all(type(s[n]) is float for n in ("mean", "median", "iqm"))
    assert all(type(v) is float for n in ("mean", "median", "iqm") for v in s["cis"][n])
    assert all(type(v) is float for v in s["ci95"] + s["per_seed"])
    assert s["ci95"][0] <= 2.5 <= s["ci95"][1]
    assert json.loads(json.dumps(s, allow_nan=False)) == s


def test_summarize_leaves_out_diverged_seeds():
    s = summarize([1.0, float("nan"), 3.0, float("inf")])
    assert s["mean"] == 2.0 and s == {**summarize([1.0, 3.0]), "per_seed": [1.0, None, 3.0, None]}
    json.dumps(s, allow_nan=False)
    empty = summarize([float("nan")], optimal_return=1.0)
    assert empty["mean"] is None and empty["ci95"] == [None, None] and empty["optimality_gap"] is None


def test_summarize_single_seed_has_a_zero_width_interval():
    s = summarize([4.5], optimal_return=10.0)
    assert s["ci95"] == [4.5, 4.5] and s["cis"]["optimality_gap"] == [5.5, 5.5]


def test_score_matrix_normalises_only_with_every_optimum_and_keeps_equal_seeds():
    m, normalized = score_matrix([[1.0, 2.0, np.nan], [10.0, 20.0, 30.0]], [2.0, 40.0])
    assert normalized and m.tolist() == [[0.5, 0.25], [1.0, 0.5]]  # env 2 keeps its first 2 finite seeds
    m, normalized = score_matrix([[1.0, 2.0], [10.0, 20.0]], [2.0, None])
    assert not normalized and m.tolist() == [[1.0, 10.0], [2.0, 20.0]]
    assert score_matrix([[1.0], [np.nan]], [1.0, 1.0]) == (None, False)


def test_aggregate_across_envs_agrees_with_rliable_called_directly():
    from rliable import metrics

    rng = np.random.default_rng(3)
    optimal = [10.0, 100.0, 1000.0]
    per_env = [rng.uniform(0.2, 1.0, size=5) * o for o in optimal]
    agg = aggregate(per_env, optimal)
    normalised = np.stack(per_env, axis=1) / np.array(optimal)
    point, ci = _rliable(normalised, lambda m: np.array([metrics.aggregate_mean(m), metrics.aggregate_median(m),
                                                         metrics.aggregate_iqm(m),
                                                         metrics.aggregate_optimality_gap(m, 1.0)]))
    assert (agg["envs"], agg["seeds"], agg["normalized"]) == (3, 5, True)
    for i, name in enumerate(STATISTICS):
        assert agg[name] == point[i] and agg["cis"][name] == [ci[0, i], ci[1, i]]
    assert agg["median"] == pytest.approx(np.median(normalised.mean(axis=0)))  # median over envs of env means
    raw = aggregate(per_env, [10.0, None, 1000.0])
    assert not raw["normalized"] and raw["optimality_gap"] is None and raw["mean"] > 100


def test_improvement_agrees_with_rliable_called_directly():
    from rliable import metrics

    rng = np.random.default_rng(4)
    x, y = rng.normal(1.0, 1.0, size=(6, 2)), rng.normal(0.0, 1.0, size=(4, 2))
    p = improvement(list(x.T), list(y.T))
    point, ci = _rliable([x, y], metrics.probability_of_improvement)
    assert p == {"p": point[0], "ci95": [ci[0, 0], ci[1, 0]]}
    assert improvement([[2.0, 3.0]], [[0.0, 1.0]])["p"] == 1.0  # every run of X beats every run of Y
    assert improvement([[1.0, 2.0]], [[1.0, 2.0]])["p"] == 0.5
    assert improvement([[1.0]], [[np.nan]]) is None


def test_two_arm_figures_are_written(tmp_path):
    rng = np.random.default_rng(5)
    arms = {"noise=eps": rng.uniform(0, 1, (4, 2)), "noise=param": rng.uniform(0.5, 1, (4, 2))}
    taus = np.linspace(0, 1, 11)
    profiles, cis = performance_profiles(arms, taus)
    assert profiles["noise=eps"] == pytest.approx([(arms["noise=eps"] > t).mean() for t in taus])  # runs above tau
    assert cis["noise=param"].shape == (2, 11)
    panel = {"title": "all cells", "profiles": profiles, "cis": cis, "taus": taus, "normalized": True}
    out = plots.performance_profiles([panel, panel], tmp_path / "profile.png")
    comps = [{"axis": "noise", "x": "param", "y": "eps", "labels": {"lr": v}, **improvement(list(arms["noise=param"].T),
                                                                                      list(arms["noise=eps"].T))}
             for v in (0.001, 0.0003)]  # fmt: skip
    poi = plots.probability_of_improvement(comps, tmp_path / "poi.png")
    for png in (out, poi):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


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
