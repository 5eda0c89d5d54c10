"""`rlx sweep --launcher slurm` against a real single-node Slurm cluster (tests/slurm_cluster.py, no accounting):
the same numbers as a local sweep, resume after scancel, settings in the sbatch script, one-line refusals."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# submitit configures logging when first imported (logging.config.dictConfig, which closes the handlers that
# exist); inside a test that closes the streams pytest's output capture is using. Import it at collection instead.
import submitit  # noqa: F401

from rlx import cluster, sweep
from rlx.cli import main
from rlx.errors import UserError

ROOT = Path(__file__).resolve().parent.parent

# A CartPole grid of 2 programs (noise) x 2 batched learning rates, 2 seeds. 30 chunks of 1000 steps, over 10 s of
# training after the first checkpoint: a scancel lands mid-run. It sends SIGTERM, which submitit ignores, then
# SIGKILL after KillWait (2 s on the test cluster). `scancel --signal=KILL` is no quicker way: it only signals, and
# one suite run saw the group finish anyway.
MODULE = """
from rlx.experiment import Experiment
EXPERIMENT = Experiment(
    name="tiny", env="cartpole", seeds=2, steps=30000,
    set={"dqn.learning_starts": 500, "dqn.target_every": 100, "eval.every": 1000, "dqn.buffer_size": 1000,
         "eval.episodes": 2, "diag.enabled": False},
    grid={"noise": ["eps", "param"], "lr": [1e-3, 3e-4]},
    launcher={"partition": "debug", "time_min": 30},
)
"""
# One CPU per task: the cluster's two CPUs run both programs at once.
ONE_CPU = ["--set", "launcher.cpus_per_task=1"]


def _sweep(module: Path, out: Path, name: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "rlx.cli", "sweep", str(module), "--out", str(out), "--name", name, *flags]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, slurm):
    """The module, a local sweep of it (the reference) and the same sweep through --launcher slurm, shared by the
    tests below; `env` points subprocesses at the cluster."""
    d = tmp_path_factory.mktemp("slurm_sweeps")
    module = d / "tiny.py"
    module.write_text(MODULE)
    # RLX_BOOTSTRAP_REPS: the autouse fixture is per test, not per module. RLX_CPU_DEVICES: a job with one CPU
    # trains on one XLA device, and the numbers depend on the device count; the local reference must match it.
    env = {**os.environ, **slurm, "RLX_BOOTSTRAP_REPS": "100", "RLX_CPU_DEVICES": "1"}
    subprocess.run(_sweep(module, d, "local"), check=True, capture_output=True, cwd=ROOT, env=env)
    on_slurm = subprocess.run(_sweep(module, d, "slurm", "--launcher", "slurm", *ONE_CPU), capture_output=True,
                              text=True, cwd=ROOT, env=env)  # fmt: skip
    return {"dir": d, "module": module, "env": env, "slurm": on_slurm}


def _squeue(env: dict, *args: str) -> list[str]:
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True, env=env, check=True).stdout.split()


@pytest.mark.slow
def test_slurm_sweep_gives_the_local_numbers_without_sacct_warnings(runs):
    r, d = runs["slurm"], runs["dir"]
    assert r.returncode == 0, r.stderr
    assert (d / "slurm" / "results.csv").read_bytes() == (d / "local" / "results.csv").read_bytes()
    assert "sacct" not in r.stderr and "Warning" not in r.stderr and "WARNING" not in r.stderr
    assert "final greedy return per cell" in r.stdout


@pytest.mark.slow
def test_module_and_set_settings_reach_the_sbatch_script(runs):
    (script,) = (runs["dir"] / "slurm" / "submitit").glob("*_submission.sh")
    lines = script.read_text().splitlines()
    for line in ("#SBATCH --partition=debug", "#SBATCH --time=30", "#SBATCH --cpus-per-task=1", "#SBATCH --array=0-1%2"):
        assert line in lines


@pytest.mark.slow
def test_scancel_mid_run_then_the_same_command_resumes(runs):
    d, env = runs["dir"], runs["env"]
    cmd = _sweep(runs["module"], d, "cut", "--launcher", "slurm", *ONE_CPU)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpts = d / "cut" / "groups" / "g0" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())):
        time.sleep(0.2)
    (task,) = [t for t in _squeue(env, "-t", "RUNNING", "-o", "%i") if t.endswith("_0")]
    subprocess.run(["scancel", task], check=True, env=env)
    err = proc.communicate(timeout=180)[1]
    assert proc.returncode == 1, err
    lines = err.strip().splitlines()
    assert lines[-1] == f"rlx: 1 of 2 program(s) did not finish; {cluster.RESUME_HINT}."
    assert lines[0].startswith(f"rlx: g0 (Slurm task {task}) did not finish; its log: ") and lines[0].endswith(".err")
    assert not sweep.group_done(d / "cut", 0) and sweep.group_done(d / "cut", 1)
    # Again, with another time limit: launcher settings are not the sweep's identity, so it resumes g0 alone.
    again = subprocess.run([*cmd, "--set", "launcher.time_min=20"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert again.returncode == 0, again.stderr
    assert "1 finished" in again.stdout
    assert (d / "cut" / "results.csv").read_bytes() == (d / "local" / "results.csv").read_bytes()
    scripts = sorted((d / "cut" / "submitit").glob("*_submission.sh"), key=lambda p: int(p.name.split("_")[0]))
    assert "#SBATCH --time=20" in scripts[-1].read_text() and "--array" not in scripts[-1].read_text()


def test_unknown_partition_is_one_line_and_submits_nothing(tmp_path, slurm, monkeypatch, capsys):
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    module = tmp_path / "tiny.py"
    module.write_text(MODULE)
    argv = ["sweep", str(module), "--out", str(tmp_path), "--name", "p", "--launcher", "slurm"]
    assert main([*argv, "--set", "launcher.partition=gpu"]) == 2
    err = capsys.readouterr().err
    assert err == "rlx: error: unknown Slurm partition 'gpu'. Partitions here: debug. Try --set launcher.partition=debug.\n"
    assert not (tmp_path / "p").exists() and _squeue(slurm, "-n", "rlx-p", "-o", "%i") == []
    # sbatch's own refusal: one line, its reason, no traceback
    assert main([*argv, "--set", "launcher.mem_gb=100000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlx: error: sbatch refused the job: Memory specification can not be satisfied")
    assert err.count("\n") == 1 and _squeue(slurm, "-n", "rlx-p", "-o", "%i") == []


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--set", "launcher.time_min=-5"], "launcher.time_min must be positive (minutes), got -5. Try --set launcher.time_min=1440."),
        (["--set", "launcher.gpus_per_task=x"], "gpus_per_task expects an integer, got 'x'."),
        (["--set", "launcher.partiton=gpu"], "unknown launcher setting 'partiton'. Did you mean 'partition'?"),
        (["--set", "launcher.sbatch=-q high"], "launcher.sbatch takes long sbatch flags such as --qos=high, got '-q high'."),
        (["--set", "launcher.sbatch=--time=5"], "launcher.sbatch '--time=5': set it with --set launcher.time_min=... instead."),
    ],
)
def test_bad_launcher_settings_are_one_line_with_the_fix(tmp_path, capsys, flags, message):
    module = tmp_path / "tiny.py"
    module.write_text(MODULE)
    assert main(["show", str(module), "--launcher", "slurm", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rlx: error: {message}") and err.count("\n") == 1


def test_launcher_settings_need_launcher_slurm_and_sbatch_on_path(tmp_path, monkeypatch, capsys):
    module = tmp_path / "tiny.py"
    module.write_text(MODULE)
    assert main(["sweep", str(module), "--out", str(tmp_path), "--set", "launcher.partition=debug"]) == 2
    assert "has no effect with --launcher local; add --launcher slurm" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm commands here
    assert main(["sweep", str(module), "--out", str(tmp_path), "--launcher", "slurm"]) == 2
    assert "--launcher slurm needs Slurm's sbatch on PATH" in capsys.readouterr().err
    assert not (tmp_path / "sweep-tiny").exists()


def test_show_prints_the_job_layout(tmp_path, capsys):
    module = tmp_path / "tiny.py"
    module.write_text(MODULE)
    assert main(["show", str(module), "--launcher", "slurm", *ONE_CPU, "--set", "launcher.mem_gb=1.5",
                 "--set", "launcher.sbatch=--qos=high"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "Slurm job array: 2 task(s), one per compiled program, on partition debug" in out
    assert "each task asks for: --time=30 --nodes=1 --ntasks-per-node=1 --partition=debug --cpus-per-task=1 " \
           "--mem=1536M --qos=high" in out  # fmt: skip
    assert "task 1: g1, 2 cell(s) × 2 seed(s) = 4 runs, 30,000 steps" in out
    assert main(["show", str(module)]) == 0
    assert "Slurm job array" not in capsys.readouterr().out


def test_settings_from_a_module_dict_and_processes_per_task():
    s = cluster.launcher_settings({"sbatch": {"qos": "high", "exclusive": True}, "gpus_per_task": 1}, {"nodes": "2"}, "slurm")
    assert s.sbatch == ("--qos=high", "--exclusive") and s.nodes == 2
    assert cluster.resources(s, processes=4) == {"time": 1440, "nodes": 2, "ntasks_per_node": 2, "gpus_per_task": 1}
    with pytest.raises(UserError, match="cannot be spread evenly over launcher.nodes=2"):
        cluster.resources(s, processes=3)


def test_waiting_ends_when_squeue_forgets_the_job_and_ctrl_c_detaches(slurm, monkeypatch):
    for k, v in slurm.items():
        monkeypatch.setenv(k, v)
    assert cluster.active_tasks("999999") == []  # finished jobs leave squeue after MinJobAge: "Invalid job id"
    cluster.wait("999999")

    def interrupted(array_id):
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster, "active_tasks", interrupted)
    with pytest.raises(cluster.Detached, match="Slurm job 7 keeps running .scancel 7 stops it."):
        cluster.wait("7")
