"""`rlx sweep`, `rlx show`, `rlx report`: grids, batching into programs, resume after kill -9, statistics."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlx import runner, sweep
from rlx.cli import main
from rlx.envs.chain import optimal_return
from rlx.errors import UserError
from rlx.experiment import Experiment, load
from rlx.results import RunDir, aggregate, improvement

ROOT = Path(__file__).resolve().parent.parent


# A tiny CartPole grid: 2 noises x 2 learning rates, 2 seeds, 2 chunks of 1000 steps.
TINY = """
from rlx.experiment import Experiment
EXPERIMENT = Experiment(
    name="{name}", env="cartpole", seeds=2, steps={steps},
    set={{"dqn.learning_starts": 500, "dqn.target_every": 100, "eval.every": 1000, "dqn.buffer_size": 1000,
         "eval.episodes": 2}},
    grid={{"noise": ["eps", "param"], "lr": {lrs}}},
)
"""


def _module(tmp_path, name="tiny", steps=2000, lrs=(1e-3, 3e-4)) -> Path:
    p = tmp_path / f"{name}.py"
    p.write_text(TINY.format(name=name, steps=steps, lrs=list(lrs)))
    return p


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- grid expansion and batching -------------------------------------------------------------------


def test_grid_expands_short_keys_and_groups_by_static_settings(tmp_path):
    exp = load(str(_module(tmp_path, lrs=(1e-4, 3e-4, 1e-3, 3e-3))))
    cells = sweep.expand(exp)
    assert [c.labels for c in cells[:2]] == [{"noise": "eps", "lr": 1e-4}, {"noise": "eps", "lr": 3e-4}]
    assert [c.cfg.optim.lr for c in cells[:4]] == [1e-4, 3e-4, 1e-3, 3e-3]
    groups = sweep.plan(cells)
    assert groups == [[0, 1, 2, 3], [4, 5, 6, 7]]  # one program per noise, the lr values batched
    assert sweep.batched_axes(cells, groups) == ["lr"]


def test_chain_grid_bundles_budget_with_env():
    cells = sweep.expand(load("chain"))
    assert len(cells) == 18 and len(sweep.plan(cells)) == 18  # env and noise both change the program
    c50 = next(c for c in cells if c.labels == {"env": "chain-50", "noise": "param"})
    assert c50.cfg.env == "chain-50" and c50.cfg.steps == 2000 * 59 and c50.cfg.explore.eps_decay_steps == 1000 * 59


@pytest.mark.parametrize(
    "grid,fragment",
    [
        ({"learning_rate": [1e-3]}, "unknown config key 'learning_rate'"),
        ({"lr": []}, "grid axis 'lr' of experiment 'x' is empty"),
        ({"lr": ["fast"]}, "grid cell lr=fast: optim.lr expects a number"),
        ({"hidden": [64]}, "expects"),
        ({}, "has no grid to sweep"),
    ],
)
def test_bad_grids_are_user_errors(grid, fragment):
    with pytest.raises(UserError, match=fragment):
        sweep.expand(Experiment(name="x", grid=grid))


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    assert main(["sweep", "chian"]) == 2
    assert "Did you mean 'chain'" in capsys.readouterr().err
    assert main(["sweep", "cartpole"]) == 2  # an experiment without a grid
    assert main(["sweep", str(_module(tmp_path)), "--devices", "0"]) == 2
    assert main(["sweep", str(_module(tmp_path)), "--launcher", "pbs"]) == 2
    # a sweep directory that belongs to another experiment
    other = _module(tmp_path, name="other")
    sweep.prepare(load(str(other)), tmp_path / "runs" / "s", 2)
    assert main(["sweep", str(_module(tmp_path)), "--out", str(tmp_path / "runs"), "--name", "s"]) == 2
    err = capsys.readouterr().err
    assert "holds a sweep of experiment 'other'" in err and err.count("\n") == 4


def test_show_prints_groups(tmp_path, capsys):
    assert main(["show", str(_module(tmp_path, lrs=(1e-4, 3e-4, 1e-3, 3e-3)))]) == 0
    out = capsys.readouterr().out
    assert "2 compiled program(s)" in out and "batched in one program (vmapped): lr" in out
    assert "compiled separately: noise" in out
    assert main(["show", str(_module(tmp_path)), "--seeds", "3", "--set", "td.gamma=0.9"]) == 0
    assert "4 cells × 3 seeds" in capsys.readouterr().out
    assert {c.cfg.td.gamma for c in sweep.expand(load(str(_module(tmp_path))), {"td.gamma": "0.9"})} == {0.9}
    assert main(["list"]) == 0
    assert "env[6] × noise[3]" in capsys.readouterr().out


# --- running ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_batches_lr_values_into_one_program_per_noise(tmp_path, monkeypatch, capsys):
    compiles = []
    real = runner.build
    monkeypatch.setattr(runner, "build", lambda cfgs, seeds, devices: compiles.append((cfgs[0].noise, len(cfgs) * seeds))
                        or real(cfgs, seeds, devices))
    module = _module(tmp_path, lrs=(1e-4, 3e-4, 1e-3, 3e-3))
    assert main(["sweep", str(module), "--out", str(tmp_path / "runs")]) == 0
    # 8 cells x 2 seeds in two programs, each vmapped over 4 learning rates x 2 seeds
    assert compiles == [("eps", 8), ("param", 8)]
    d = tmp_path / "runs" / "sweep-tiny"
    rows = _csv(d / "results.csv")
    assert [(r["noise"], float(r["lr"])) for r in rows][:2] == [("eps", 1e-4), ("eps", 3e-4)] and len(rows) == 8
    for r in rows:
        assert int(r["seeds"]) == 2 and int(r["steps"]) == 2000
        assert float(r["ci95_low"]) <= float(r["mean"]) <= float(r["ci95_high"])
    two_arm = ("performance_profile_noise.png", "probability_of_improvement_noise.png")  # noise has two values
    for png in ("curves_lr.png", "curves_noise.png", "final_return.png", *two_arm):
        assert (d / png).stat().st_size > 1000
    out = capsys.readouterr().out
    assert "final greedy return per cell" in out
    summary = json.loads((d / "summary.json").read_text())
    seeds = {(c["labels"]["noise"], c["labels"]["lr"]): c["eval_return"]["per_seed"] for c in summary["cells"]}
    assert [(c["x"], c["y"], c["labels"]) for c in summary["comparisons"]] == [
        ("param", "eps", {"lr": lr}) for lr in (1e-4, 3e-4, 1e-3, 3e-3)
    ]
    for c in summary["comparisons"]:  # P(param > eps) per learning rate, as rliable gives it on the same seeds
        lr = c["labels"]["lr"]
        assert {"p": c["p"], "ci95": c["ci95"]} == improvement([seeds["param", lr]], [seeds["eps", lr]])
        assert f"P(noise=param > noise=eps | lr={lr}) = {c['p']:.2f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" in out
    assert summary["aggregates"] == []  # one env: nothing to aggregate across
    # each cell equals the same settings trained alone (seed i uses the same key either way)
    cfg = sweep.expand(load(str(module)))[6].cfg  # param, lr=1e-3
    alone = runner.train(cfg, 2, RunDir(tmp_path / "alone"))
    cell = json.loads((d / "summary.json").read_text())["cells"][6]
    assert cell["labels"] == {"noise": "param", "lr": 1e-3}
    assert cell["eval_return"]["per_seed"] == alone["eval_return"]["per_seed"]

    # `rlx report` rebuilds the numbers and figures from disk
    before = (d / "results.csv").read_text()
    for f in ("results.csv", "summary.json", "final_return.png", *two_arm):
        (d / f).unlink()
    assert main(["report", str(d)]) == 0
    assert (d / "results.csv").read_text() == before and (d / "final_return.png").exists()
    assert all((d / f).exists() for f in two_arm)
    # started again, a finished sweep trains nothing
    compiles.clear()
    assert main(["sweep", str(module), "--out", str(tmp_path / "runs")]) == 0
    assert compiles == []


def _sweep_cmd(module, out):
    return [sys.executable, "-m", "rlx.cli", "sweep", str(module), "--out", str(out), "--name", "s"]


@pytest.mark.slow
def test_kill_9_mid_sweep_then_resume_gives_the_uninterrupted_numbers(tmp_path):
    module = _module(tmp_path, steps=4000)
    env = {**os.environ, "RLX_CPU_DEVICES": "1"}
    subprocess.run(_sweep_cmd(module, tmp_path / "full"), check=True, capture_output=True, cwd=ROOT, env=env)

    proc = subprocess.Popen(_sweep_cmd(module, tmp_path / "cut"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ckpts = tmp_path / "cut" / "s" / "groups" / "g0" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not sweep.group_done(tmp_path / "cut" / "s", 1)  # killed before the end
    subprocess.run(_sweep_cmd(module, tmp_path / "cut"), check=True, capture_output=True, cwd=ROOT, env=env)
    full, cut = tmp_path / "full" / "s", tmp_path / "cut" / "s"
    assert (cut / "results.csv").read_text() == (full / "results.csv").read_text()
    for g in (0, 1):
        assert RunDir(cut / "groups" / f"g{g}", resume=True).read_metrics() == RunDir(
            full / "groups" / f"g{g}", resume=True
        ).read_metrics()


@pytest.mark.slow
def test_batch_axis_is_sharded_over_four_cpu_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    subprocess.run(_sweep_cmd(_module(tmp_path), tmp_path), check=True, capture_output=True, cwd=ROOT, env=env)
    summary = json.loads((tmp_path / "s" / "groups" / "g0" / "summary.json").read_text())
    assert [c["devices"] for c in summary["cells"]] == [4, 4]  # 2 cells x 2 seeds over 4 devices
    subprocess.run([*_sweep_cmd(_module(tmp_path, name="one"), tmp_path), "--name", "one", "--devices", "1"],
                   check=True, capture_output=True, cwd=ROOT, env=env)  # fmt: skip
    summary = json.loads((tmp_path / "one" / "groups" / "g0" / "summary.json").read_text())
    assert [c["devices"] for c in summary["cells"]] == [1, 1]


@pytest.mark.slow
def test_submitit_local_launcher_runs_each_program_as_a_job(tmp_path):
    pytest.importorskip("submitit")
    module = _module(tmp_path)
    assert main(["sweep", str(module), "--out", str(tmp_path), "--name", "s", "--launcher", "submitit-local"]) == 0
    d = tmp_path / "s"
    assert len(_csv(d / "results.csv")) == 4 and sweep.group_done(d, 0) and sweep.group_done(d, 1)
    assert len(list((d / "submitit").glob("*result.pkl"))) == 2


CHAIN = """
from rlx.experiment import Experiment
def chain(n):
    return {"env": f"chain-{n}"}
EXPERIMENT = Experiment(
    name="minichain", seeds=2, steps=4000,
    set={"net.hidden": (16, 16), "dqn.num_envs": 1, "dqn.train_every": 1, "dqn.target_every": 100,
         "dqn.learning_starts": 500, "dqn.batch_size": 32, "optim.lr": 1e-3, "td.gamma": 0.999,
         "explore.eps_end": 0.1, "explore.eps_decay_steps": 2000, "eval.every": 2000, "eval.episodes": 1, "eval.solve_streak": 20},
    grid={"env": [chain(4), chain(6)], "noise": ["param"]},
)
"""


@pytest.mark.slow
def test_chain_sweep_writes_episodes_to_solve_figure(tmp_path, capsys):
    module = tmp_path / "minichain.py"
    module.write_text(CHAIN)
    assert main(["sweep", str(module), "--out", str(tmp_path), "--name", "c"]) == 0
    d = tmp_path / "c"
    rows = _csv(d / "results.csv")
    assert [r["env"] for r in rows] == ["chain-4", "chain-6"]
    assert all(r["solved"] in ("0", "1", "2") for r in rows)
    assert (d / "episodes_to_solve.png").stat().st_size > 1000
    # two chains: the across-env aggregate, on returns / each chain's optimal return
    summary = json.loads((d / "summary.json").read_text())
    cells = summary["cells"]
    assert [c["optimal_return"] for c in cells] == [optimal_return(4), optimal_return(6)]
    expected = aggregate([c["eval_return"]["per_seed"] for c in cells], [c["optimal_return"] for c in cells])
    assert summary["aggregates"] == [{"labels": {"noise": "param"}, **expected}] and expected["normalized"]
    assert "across envs" in capsys.readouterr().out


REPORTED = """
from rlx.experiment import Experiment
EXPERIMENT = Experiment(
    name="reported", env="cartpole", seeds=2, steps=2000, report=("score", "auc", "srank"),
    set={"dqn.learning_starts": 500, "dqn.target_every": 100, "eval.every": 1000, "dqn.buffer_size": 1000,
         "eval.episodes": 2, "net.hidden": (16,), "diag.batch": 32},
    grid={"act": [{"act": "relu", "net.activation": "relu"}, {"act": "tanh", "net.activation": "tanh"}]},
)
"""


@pytest.mark.slow
def test_report_statistics_and_label_only_grid_keys(tmp_path, capsys):
    mod = tmp_path / "reported.py"
    mod.write_text(REPORTED)
    cells = sweep.expand(load(str(mod)))
    assert [c.labels for c in cells] == [{"act": "relu"}, {"act": "tanh"}]
    assert [c.cfg.net.activation for c in cells] == ["relu", "tanh"]  # "act" is no config key: only a label
    assert main(["sweep", str(mod), "--out", str(tmp_path), "--name", "r"]) == 0
    out = capsys.readouterr().out
    assert "score [95% CI]" in out and "srank [95% CI]" in out
    d = tmp_path / "r"
    rows = _csv(d / "results.csv")
    summary = json.loads((d / "summary.json").read_text())
    for row, cell in zip(rows, summary["cells"], strict=True):
        metrics = RunDir(sweep.group_dir(d, cell["group"]), resume=True).read_metrics()
        per_seed = {s: [m for m in metrics if m["seed"] == s] for s in (0, 1)}
        score = [max(m["eval_return"] for m in ms) for ms in per_seed.values()]
        auc = [sum(m["eval_return"] for m in ms) / len(ms) for ms in per_seed.values()]
        srank = [ms[-1]["srank"] for ms in per_seed.values()]
        assert cell["stats"]["score"]["per_seed"] == pytest.approx(score)
        assert cell["stats"]["auc"]["per_seed"] == pytest.approx(auc)
        assert cell["stats"]["srank"]["per_seed"] == srank
        assert float(row["score_mean"]) == pytest.approx(sum(score) / 2)
    for f in ("score.png", "auc.png", "srank.png", "curves_act_srank.png"):
        assert (d / f).exists()


def _cell(i, env, noise, per_seed, optimal):
    return {"cell": i, "labels": {"env": env, "noise": noise}, "env": env, "optimal_return": optimal,
            "eval_return": {"per_seed": per_seed}}  # fmt: skip


def test_across_env_aggregate_and_two_arm_comparison_use_envs_as_tasks():
    rng = np.random.default_rng(0)
    optimal = {"chain-10": 10.0, "chain-20": 20.0}
    grid = [(env, noise) for env in optimal for noise in ("eps", "param")]
    cells = [_cell(i, env, noise, list(rng.uniform(0.0, optimal[env], 5)), optimal[env])
             for i, (env, noise) in enumerate(grid)]  # fmt: skip
    axes = ["env", "noise"]
    assert sweep.env_axes(cells, axes) == ["env"]
    assert sweep.two_arm_axes(cells, axes) == [("noise", "eps", "param")]  # two envs are no two arms
    arm = {n: [c["eval_return"]["per_seed"] for c in cells if c["labels"]["noise"] == n] for n in ("eps", "param")}
    aggs = sweep.env_aggregates(cells, axes)
    assert aggs == [{"labels": {"noise": n}, **aggregate(arm[n], list(optimal.values()))} for n in ("eps", "param")]
    comps = sweep.comparisons(cells, axes)
    assert comps == [{"axis": "noise", "x": "param", "y": "eps", "labels": {}, **improvement(arm["param"], arm["eps"])}]
    summary = {"aggregates": aggs, "comparisons": comps}
    cols, rows = sweep.aggregate_rows(summary)
    assert cols[:4] == ["noise", "envs", "seeds", "scores"] and rows[0][:4] == ["eps", "2", "5", "÷ optimal"]
    assert sweep.comparison_lines(summary) == [f"P(noise=param > noise=eps) = {comps[0]['p']:.2f} "
                                               f"[{comps[0]['ci95'][0]:.2f}, {comps[0]['ci95'][1]:.2f}]"]  # fmt: skip
    one_env = [c for c in cells if c["env"] == "chain-10"]
    assert sweep.env_axes(one_env, axes) == [] and sweep.env_aggregates(one_env, axes) == []
