"""The `rlx` command line end to end: options, run directory, determinism, resume, Ctrl-C, errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runs import metrics, rlx

from rlx.cli import main

SMALL = [
    "--steps", "4000",
    "--set", "dqn.learning_starts=1000",
    "--set", "dqn.buffer_size=2000",
    "--set", "dqn.batch_size=32",
    "--set", "eval.every=1000",
    "--set", "eval.episodes=3",
    "--set", "explore.eps_decay_steps=3000",
]  # fmt: skip

# Every option of `rlx train --help` and the test below that exercises it.
TRAIN_OPTIONS = {
    "--noise": "test_train_writes_the_run_directory",
    "--seeds": "test_train_writes_the_run_directory",
    "--steps": "test_train_writes_the_run_directory",
    "--set": "test_train_writes_the_run_directory",
    "--out": "test_train_writes_the_run_directory",
    "--name": "test_train_writes_the_run_directory",
    "--resume": "test_resume_after_interrupt_matches_uninterrupted_run",
    "--experiment": "test_experiment_module_sets_the_run",
    "--help": "test_every_train_option_is_exercised",
    "--agent": "test_agent_option_selects_pqn",
    "--deterministic": "test_deterministic_is_recorded_and_asks_xla_for_deterministic_ops",
    "--processes": "test_processes_without_slurm_is_refused",  # runs under Slurm: tests/test_distributed.py
}




def test_help_lists_the_commands(capsys):
    rc, out, _ = rlx(capsys, "--help")
    assert rc == 0
    for cmd in ("train", "envs", "list"):
        assert re.search(rf"^\s+{cmd}\s", out, re.M), cmd


def test_every_train_option_is_exercised(capsys):
    rc, out, _ = rlx(capsys, "train", "--help")
    assert rc == 0
    assert set(re.findall(r"(--[a-z][a-z-]*)", out)) == set(TRAIN_OPTIONS)
    names = {n for n in globals() if n.startswith("test_")}
    assert set(TRAIN_OPTIONS.values()) <= names


def test_processes_without_slurm_is_refused(tmp_path, monkeypatch, capsys):
    """--processes runs one program over the tasks of a Slurm step; outside one it is bad input."""
    for var in ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"):
        monkeypatch.delenv(var, raising=False)
    assert main(["train", "cartpole", "--seeds", "2", "--processes", "2", "--out", str(tmp_path)]) == 2
    assert "srun -n 2" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_agent_option_selects_pqn(tmp_path, capsys):
    pqn = ["--set", "pqn.num_envs=4", "--set", "pqn.rollout=8", "--set", "eval.every=512", "--steps", "1024"]
    rc, out, err = rlx(capsys, "train", "cartpole", "--agent", "pqn", *pqn, "--out", tmp_path, "--name", "q")
    assert rc == 0, err
    assert "replay none" in out  # the run header: PQN learns from its rollouts
    summary = json.loads((tmp_path / "q" / "summary.json").read_text())
    assert summary["agent"] == "pqn" and summary["steps"] == 1024
    assert {r["updates"] for r in metrics(tmp_path / "q")} == {2.0 * 4 * 512 / 32}  # epochs x minibatches per block
    rc, _, err = rlx(capsys, "train", "cartpole", "--agent", "ppo", "--out", tmp_path)
    assert rc == 2 and "unknown agent 'ppo'" in err


def test_envs_and_list(capsys):
    rc, out, _ = rlx(capsys, "envs")
    assert rc == 0 and "cartpole" in out and "(4,)" in out and "chain-N" in out
    rc, out, _ = rlx(capsys, "list")
    assert rc == 0 and "cartpole" in out


@pytest.mark.slow
def test_train_writes_the_run_directory(tmp_path, capsys):
    rc, out, err = rlx(capsys, "train", "cartpole", "--noise", "eps", "--seeds", 2, *SMALL, "--out", tmp_path, "--name", "a")
    assert rc == 0, err
    run = tmp_path / "a"
    summary = json.loads((run / "summary.json").read_text())
    assert {"env", "agent", "noise", "seeds", "steps", "wall_seconds", "compile_seconds", "eval_return"} <= set(summary)
    assert summary["steps"] == 4000 and summary["seeds"] == 2 and summary["env"] == "cartpole"
    ev = summary["eval_return"]
    assert {"mean", "median", "iqm", "ci95", "cis", "per_seed"} <= set(ev) and len(ev["per_seed"]) == 2
    assert ev["ci95"][0] <= ev["mean"] <= ev["ci95"][1]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["seeds"] == 2 and cfg["config"]["dqn"]["batch_size"] == 32
    rows = metrics(run)
    assert len(rows) == 2 * 4 and {r["seed"] for r in rows} == {0, 1}
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert any((run / "checkpoints").iterdir())
    assert "greedy evaluation" in out
    # the run header gives one seed's replay memory: 2,000 CartPole transitions of 2 x 4 float32 + 9 bytes, + 8
    assert "replay 80.1 KiB/seed" in out
    # seeds differ
    s0 = [r["eval_return"] for r in rows if r["seed"] == 0] + [r["loss"] for r in rows if r["seed"] == 0]
    s1 = [r["eval_return"] for r in rows if r["seed"] == 1] + [r["loss"] for r in rows if r["seed"] == 1]
    assert s0 != s1


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(tmp_path, capsys):
    for name in ("x", "y"):
        rc, _, err = rlx(capsys, "train", "cartpole", "--seeds", 2, *SMALL, "--out", tmp_path, "--name", name)
        assert rc == 0, err
    assert metrics(tmp_path / "x") == metrics(tmp_path / "y")


@pytest.mark.slow
def test_deterministic_is_recorded_and_asks_xla_for_deterministic_ops(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # restored after the test
    rc, _, err = rlx(capsys, "train", "cartpole", "--seeds", 1, *SMALL, "--out", tmp_path, "--name", "d", "--deterministic")
    assert rc == 0, err
    assert json.loads((tmp_path / "d" / "config.json").read_text())["config"]["deterministic"] is True
    assert "--xla_gpu_deterministic_ops=true" in os.environ["XLA_FLAGS"].split()
    # On CPU the flag changes nothing: the same seed without it gives the same numbers.
    rc, _, err = rlx(capsys, "train", "cartpole", "--seeds", 1, *SMALL, "--out", tmp_path, "--name", "n")
    assert rc == 0, err
    assert metrics(tmp_path / "d") == metrics(tmp_path / "n")


@pytest.mark.slow
def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path, capsys, monkeypatch):
    from rlx import runner

    rc, _, err = rlx(capsys, "train", "cartpole", "--seeds", 2, *SMALL, "--out", tmp_path, "--name", "full")
    assert rc == 0, err

    real_train = runner.train

    def interrupted_train(*args, on_chunk=None, **kw):
        def hook(steps, rows):
            on_chunk(steps, rows)
            if steps == 2000:  # Ctrl-C arrives after chunk 2 of 4
                raise KeyboardInterrupt

        return real_train(*args, on_chunk=hook, **kw)

    monkeypatch.setattr(runner, "train", interrupted_train)
    rc, _, err = rlx(capsys, "train", "cartpole", "--seeds", 2, *SMALL, "--out", tmp_path, "--name", "cut")
    assert rc == 130 and "--resume" in err
    assert max(r["steps"] for r in metrics(tmp_path / "cut")) == 2000
    monkeypatch.setattr(runner, "train", real_train)
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", "cut")
    assert rc == 0, err
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    # flags that contradict the saved run are refused, and nothing is lost
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--set", "optim.lr=1", "--out", tmp_path, "--name", "cut")
    assert rc == 2 and "optim.lr" in err
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")


def _saved_run(path: Path, section: str, cfg, seeds: int) -> str:
    """A run directory holding only the config.json a command wrote; returns that file's text."""
    from rlx import config as C

    path.mkdir(parents=True)
    text = json.dumps({section: C.to_dict(cfg), "seeds": seeds})
    (path / "config.json").write_text(text)
    return text


def test_resume_refuses_settings_that_differ_from_the_saved_run(tmp_path, capsys):
    from rlx import config as C

    saved = C.apply_overrides(C.Config(), {"env": "cartpole", "dqn.batch_size": 32})
    text = _saved_run(tmp_path / "cartpole-eps-20240101-000000", "config", saved, 2)
    # without --name, --resume picks the newest ENV-NOISE-* run; each differing key is named, the file is untouched
    args = ["--seeds", 3, "--set", "dqn.batch_size=64", "--set", "eval.episodes=4"]
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", *args, "--out", tmp_path)
    assert rc == 2 and err.count("\n") == 1 and "cartpole-eps-20240101-000000" in err
    assert all(k in err for k in ("dqn.batch_size", "eval.episodes", "seeds")) and "drop those settings" in err
    assert (tmp_path / "cartpole-eps-20240101-000000" / "config.json").read_text() == text
    # a setting that agrees with the saved one (after type conversion) is not named
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--seeds", 3, "--set", "dqn.batch_size=32.0",
                     "--out", tmp_path)
    assert rc == 2 and "seeds differ" in err and "batch_size" not in err


def test_resume_of_another_commands_run_or_a_bad_name_is_exit_2(tmp_path, capsys):
    from rlx.sentiment.lm import LMConfig

    _saved_run(tmp_path / "lm", "lm", LMConfig(), 1)
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", "lm")
    assert rc == 2 and "not a run of this command" in err and err.count("\n") == 1
    rc, _, err = rlx(capsys, "train", "cartpole", "--out", tmp_path, "--name", "a/b")
    assert rc == 2 and "--name must be a plain directory name" in err


@pytest.mark.slow
def test_experiment_module_sets_the_run(tmp_path, capsys):
    mod = tmp_path / "mine.py"
    mod.write_text(
        "from rlx.experiment import Experiment\n"
        "EXPERIMENT = Experiment(name='mine', env='cartpole', noise='none', seeds=1, steps=2000,\n"
        "    set={'dqn.learning_starts': 1000, 'eval.every': 1000, 'eval.episodes': 2, 'dqn.batch_size': 16})\n"
    )
    rc, _, err = rlx(capsys, "train", "--experiment", mod, "--out", tmp_path, "--name", "e")
    assert rc == 0, err
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["config"]["noise"] == "none" and cfg["config"]["dqn"]["batch_size"] == 16 and cfg["seeds"] == 1
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["noise"] == "none" and summary["steps"] == 2000


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["train", "cartpol"], "unknown env"),
        (["train", "cartpole", "--noise", "loud"], "unknown noise"),
        (["train", "cartpole", "--set", "dqn.lrr=1"], "unknown config key 'dqn.lrr'"),
        (["train", "cartpole", "--set", "optim.lr=fast"], "optim.lr expects a number"),
        (["train", "cartpole", "--seeds", "abc"], "--seeds"),
        (["train", "cartpole", "--seeds", "0"], "seeds must be positive"),
        (["train", "cartpole", "--steps", "-10"], "steps must be positive"),
        (["train", "--experiment", "nosuch"], "unknown experiment"),
        (["train", "cartpole", "--resume", "--name", "never"], "nothing to resume"),
        (["train"], "give an env"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment, capsys, tmp_path):
    rc, _, err = rlx(capsys, *args, "--out", tmp_path)
    assert rc == 2
    assert fragment.lower() in err.lower() and err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_out_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    rc, _, err = rlx(capsys, "train", "cartpole", *SMALL, "--out", blocker / "runs")
    assert rc == 2 and "cannot write" in err and err.count("\n") == 1


@pytest.mark.slow
def test_existing_run_is_never_overwritten(tmp_path, capsys):
    rc, _, _ = rlx(capsys, "train", "cartpole", "--steps", "2000", *SMALL[2:], "--out", tmp_path, "--name", "r")
    assert rc == 0
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    rc, _, err = rlx(capsys, "train", "cartpole", "--steps", "2000", *SMALL[2:], "--out", tmp_path, "--name", "r")
    assert rc == 2 and "--resume" in err
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_corrupt_checkpoint_on_resume_is_exit_2(tmp_path, capsys):
    rc, _, _ = rlx(capsys, "train", "cartpole", "--steps", "2000", *SMALL[2:], "--out", tmp_path, "--name", "r")
    assert rc == 0
    for f in (tmp_path / "r" / "checkpoints").rglob("*"):
        if f.is_file() and "state" in f.parts:
            f.write_bytes(b"garbage")
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", "r")
    assert rc == 2 and "cannot resume" in err and err.count("\n") == 1
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before


@pytest.mark.slow
def test_ctrl_c_saves_the_last_chunk_and_exits_130(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "rlx.cli", "train", "cartpole", "--steps", "400000", *SMALL[2:], "--out", str(tmp_path), "--name", "c"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    metrics_file = tmp_path / "c" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics_file.exists() and metrics_file.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    ckpts = [int(p.name) for p in (tmp_path / "c" / "checkpoints").iterdir() if p.name.isdigit()]
    assert ckpts and max(ckpts) >= 2000
    assert max(r["steps"] for r in metrics(tmp_path / "c")) >= max(ckpts)


@pytest.mark.parametrize("noise,keys", [("param", {"dist", "delta", "sigma", "frac_differs"}), ("noisy", {"frac_differs"}), ("none", set())])
@pytest.mark.slow
def test_every_noise_trains_checkpoints_and_resumes(tmp_path, capsys, noise, keys):
    rc, _, err = rlx(capsys, "train", "cartpole", "--noise", noise, *SMALL, "--steps", "2000", "--out", tmp_path, "--name", noise)
    assert rc == 0, err
    rows = metrics(tmp_path / noise)
    assert keys <= set(rows[-1]) and all(np.isfinite(rows[-1][k]) for k in keys)
    # resuming the finished run restores the checkpoint (the strategy state must round-trip through orbax)
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", noise)
    assert rc == 0, err


def test_show_config_prints_every_key_with_value_unit_and_meaning(capsys):
    rc, out, err = rlx(capsys, "show", "--config", "cartpole", "--noise", "param", "--set", "optim.lr=1e-3")
    assert rc == 0, err
    from rlx import config as C

    for key in C.keys():
        assert key in out, key
    assert re.search(r"optim\.lr \*\s*│ 0\.001\s*│\s*│ learning rate", out)
    assert re.search(r"eval\.every\s*│ 50000\s*│ env steps", out) and "gradient updates" in out
    rc, _, err = rlx(capsys, "show", "--config", "cartpol")
    assert rc == 2 and "Did you mean 'cartpole'" in err
