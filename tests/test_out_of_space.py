"""A write that finds no room stops the run with one line naming the file, exit 2, and leaves a run that --resume
finishes. A file-size limit (ulimit -f, with SIGXFSZ ignored so that writes fail with EFBIG) stands in for a
full disk: rlx treats EFBIG, ENOSPC and EDQUOT alike."""

import contextlib
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import metrics, rlx

from rlx import plots
from rlx.cli import main
from rlx.results import RunDir

ARGS = ["--seeds", "2", "--steps", "4000", "--set", "eval.every=1000", "--set", "dqn.learning_starts=500",
        "--set", "diag.enabled=false"]  # fmt: skip




@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oos")
    assert main(["train", "cartpole", *ARGS, "--out", str(out), "--name", "full"]) == 0
    return out / "full"


# `rlx train` whose files may grow to LIMIT bytes from the metrics write of chunk 3 on (once checkpoint 2000, saved
# in the background, is complete): LIMIT just above the size metrics.jsonl has then ("metrics") fails that write;
# 64 KiB fails the save of checkpoint 3000 instead, whose array data are larger while every other file stays
# smaller. Orbax reports that failure when the next save waits for it, after chunk 4's rows are written.
LIMITED = """
import resource, signal, sys, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from rlx.results import RunDir
real = RunDir.append_metrics
def append_metrics(self, rows):
    if rows[0]["chunk"] == 3:
        while not (self.path / "checkpoints" / "2000").is_dir():
            time.sleep(0.01)
        size = (self.path / "metrics.jsonl").stat().st_size + 100 if sys.argv[1] == "metrics" else 65536
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
    real(self, rows)
RunDir.append_metrics = append_metrics
from rlx.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("write,path,rows", [("metrics", "metrics.jsonl", 4), ("checkpoint", "checkpoints", 8)])
def test_a_training_write_without_room_is_one_line_and_resumes(reference, tmp_path, capsys, write, path, rows):
    run = tmp_path / "r"
    cmd = [sys.executable, "-c", LIMITED, write, "train", "cartpole", *ARGS, "--out", str(tmp_path), "--name", "r"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"rlx: error: file too large writing {run / path}")
    assert proc.stderr.rstrip().endswith("then run the same command with --resume"), proc.stderr
    # what was written before stays whole: every metrics line parses, the checkpoint of chunk 2 is there
    assert len(metrics(run)) == rows and sorted(p.name for p in (run / "checkpoints").iterdir())[:2] == ["1000", "2000"]
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", "r")
    assert rc == 0, err
    assert metrics(run) == metrics(reference)


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Writes in this process fail with EFBIG past nbytes until the block ends."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.slow
@pytest.mark.parametrize("target,name", [("summary", "summary.json"), ("figure", "learning_curve.png")])
def test_a_summary_or_figure_without_room_keeps_the_old_file(reference, tmp_path, capsys, monkeypatch, target, name):
    run = tmp_path / "full"
    shutil.copytree(reference, run)
    before = (run / name).read_bytes()
    real_summary, real_figures = RunDir.write_summary, plots.run_figures

    def write_summary(self, summary):
        with file_size_limit(100 if target == "summary" else 10**9):
            real_summary(self, summary)

    def run_figures(*a, **kw):
        with file_size_limit(1000):
            real_figures(*a, **kw)

    monkeypatch.setattr(RunDir, "write_summary", write_summary)
    monkeypatch.setattr(plots, "run_figures", run_figures)
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", "full")
    assert rc == 2 and err.count("\n") == 1 and f"file too large writing {run / name};" in err, err
    assert (run / name).read_bytes() == before and not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    rc, _, err = rlx(capsys, "train", "cartpole", "--resume", "--out", tmp_path, "--name", "full")
    assert rc == 0, err
    assert metrics(run) == metrics(reference)
