"""One run over several processes (`--processes`, rlx.distributed) on the test Slurm cluster (fixture `slurm`):
two processes with one CPU device each compute what one process with two devices computes, and only the first
writes the run directory."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlx.cli import main

RLX = str(Path(sys.executable).parent / "rlx")
RUN = ["train", "cartpole", "--seeds", "4", "--steps", "8000", "--set", "eval.every=4000",
       "--set", "dqn.learning_starts=1000"]  # fmt: skip


def _env(slurm, **extra):
    # The XLA_FLAGS device count rlx set in this test process is not inherited: each Slurm task takes its share
    # of the node's CPUs, one device each (rlx.ADDED).
    env = {k: v for k, v in os.environ.items() if k != "RLX_CPU_DEVICES"}
    return {**env, **slurm, **extra}


def _srun(slurm, n, args, **kw):
    return subprocess.run(["srun", "-n", str(n), RLX, *args], env=_env(slurm), capture_output=True, text=True, **kw)


@pytest.mark.slow
def test_two_processes_give_the_metrics_of_one_process_with_two_devices_and_resume(slurm, tmp_path):
    one = subprocess.run([RLX, *RUN, "--out", str(tmp_path), "--name", "one"], env=_env(slurm, RLX_CPU_DEVICES="2"),
                         capture_output=True, text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr
    two = _srun(slurm, 2, [*RUN, "--out", str(tmp_path), "--name", "two", "--processes", "2"])
    assert two.returncode == 0, two.stderr
    want = (tmp_path / "one" / "metrics.jsonl").read_bytes()
    assert want.count(b"\n") == 8  # 4 seeds x 2 chunks
    assert (tmp_path / "two" / "metrics.jsonl").read_bytes() == want
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["devices"] == 2
    # Only process 0 writes: one TensorBoard file (each writer opens its own), one table on stdout.
    assert len(list((tmp_path / "two" / "tb").glob("events.*"))) == 1
    assert two.stdout.count("greedy evaluation after") == 1
    # Resume through orbax's multi-host restore: drop the last checkpoint, continue from the first.
    shutil.rmtree(tmp_path / "two" / "checkpoints" / "8000")
    again = _srun(slurm, 2, ["train", "cartpole", "--out", str(tmp_path), "--name", "two", "--resume", "--processes", "2"])
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "two" / "metrics.jsonl").read_bytes() == want


@pytest.mark.parametrize(
    "seeds,processes,env,message",
    [
        ("6", "3", "cartpole", "--processes 3, but this Slurm step has 2 tasks; use --processes 2, or srun -n 3."),
        ("1", "2", "cartpole", "--processes 2 is more than the 1 runs (cells x seeds) to spread over"),
        ("3", "2", "cartpole", "the 3 runs (cells x seeds) do not split evenly over 2 processes"),
        ("2", "2", "pong", "pong is stepped on the host"),
    ],
)
def test_bad_process_layouts_get_one_line(tmp_path, monkeypatch, capsys, seeds, processes, env, message):
    """Checked in the process before jax.distributed starts, as in each task of `srun -n 2` (its environment)."""
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", "0")
    argv = ["train", env, "--seeds", seeds, "--processes", processes, "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rlx: error: {message}") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())


LRS = """
from rlx.experiment import Experiment
EXPERIMENT = Experiment(
    name="lrs", env="cartpole", seeds=2, steps=4000,
    set={"dqn.learning_starts": 500, "eval.every": 2000, "eval.episodes": 2, "diag.enabled": False},
    grid={"lr": [1e-3, 3e-4]},
)
"""


@pytest.mark.slow
def test_a_sweep_over_two_processes_gives_the_numbers_of_one(slurm, tmp_path):
    """One group of 2 cells x 2 seeds: one process with two devices, two processes under srun, and a Slurm array
    task of two processes all give the same results.csv."""
    module = tmp_path / "lrs.py"
    module.write_text(LRS)
    sweep = ["sweep", str(module), "--out", str(tmp_path)]
    one = subprocess.run([RLX, *sweep, "--name", "one"], env=_env(slurm, RLX_CPU_DEVICES="2"), capture_output=True,
                         text=True)  # fmt: skip
    assert one.returncode == 0, one.stderr
    two = _srun(slurm, 2, [*sweep, "--name", "two", "--processes", "2"])
    assert two.returncode == 0, two.stderr
    array = subprocess.run([RLX, *sweep, "--name", "array", "--processes", "2", "--launcher", "slurm",
                            "--set", "launcher.cpus_per_task=1"], env=_env(slurm), capture_output=True, text=True)  # fmt: skip
    assert array.returncode == 0, array.stderr
    want = (tmp_path / "one" / "results.csv").read_bytes()
    for name in ("two", "array"):
        assert (tmp_path / name / "results.csv").read_bytes() == want, name
        assert json.loads((tmp_path / name / "groups" / "g0" / "summary.json").read_text())["cells"][0]["devices"] == 2
    assert len(list((tmp_path / "two" / "groups" / "g0" / "tb").rglob("events.*"))) == 2  # one per cell
    assert two.stdout.count("final greedy return per cell") == 1
