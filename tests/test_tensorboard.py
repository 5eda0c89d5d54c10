"""TensorBoard event files (rlx.tensorboard): TensorBoard's own reader finds the numbers of metrics.jsonl, per
seed and as the mean over seeds; they are on disk at every chunk boundary; a resumed run leaves no duplicate or
stale point; a sweep group writes one tree per cell, named by the cell."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runs import metrics, rlx
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlx import runner, sweep, tensorboard
from rlx.experiment import load

SMALL = [
    "--set", "dqn.learning_starts=1000",
    "--set", "dqn.buffer_size=2000",
    "--set", "dqn.batch_size=32",
    "--set", "eval.episodes=3",
    "--set", "explore.eps_decay_steps=3000",
]  # fmt: skip
NOT_TAGS = {"cell", "seed", "chunk", "steps"}




def read_tb(path: Path, purge: bool = True) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] as TensorBoard's reader loads the event files of one directory (all points kept)."""
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0}, purge_orphaned_data=purge)
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def expected(rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] that one cell's metrics.jsonl rows imply (nulls and text such as `health` have no
    point)."""
    want = {}
    for steps in sorted({r["steps"] for r in rows}):
        at = sorted((r for r in rows if r["steps"] == steps), key=lambda r: r["seed"])
        for key in sorted({k for r in at for k in r} - NOT_TAGS):
            vals = [(r["seed"], r[key]) for r in at if isinstance(r.get(key), int | float)]
            for seed, v in vals:
                want.setdefault(f"seed_{seed}/{key}", []).append((steps, v))
            if vals:
                want.setdefault(f"mean/{key}", []).append((steps, float(np.mean([v for _, v in vals]))))
    return want


def assert_same(tb: dict, want: dict) -> None:
    """Same tags, the same steps once each, and the same values to float32 precision."""
    assert sorted(tb) == sorted(want)
    for tag, points in want.items():
        assert [s for s, _ in tb[tag]] == [s for s, _ in points], tag
        np.testing.assert_allclose([v for _, v in tb[tag]], [v for _, v in points], rtol=1e-6, err_msg=tag)


@pytest.mark.slow
def test_train_writes_the_metric_rows_as_scalars(tmp_path, capsys):
    rc, _, err = rlx(capsys, "train", "cartpole", "--noise", "param", "--seeds", 2, "--steps", 20000, *SMALL,
                     "--set", "eval.every=5000", "--out", tmp_path, "--name", "p")  # fmt: skip
    assert rc == 0, err
    run = tmp_path / "p"
    rows = metrics(run)
    assert len(rows) == 2 * 4
    # what the test covers: greedy and exploratory returns, the loss, parameter noise and representation health
    assert {"eval_return", "return_mean", "loss", "q_mean", "sigma", "dist", "delta", "srank"} <= set(rows[0])
    assert [p.is_file() for p in (run / "tb").iterdir()] == [True]  # one run, one tree: tb/ itself
    tb = read_tb(run / "tb")
    assert_same(tb, expected(rows))
    assert tb["seed_0/eval_return"] != tb["seed_1/eval_return"]  # so that a seed mix-up would show


@pytest.mark.slow
def test_resume_leaves_no_duplicate_or_stale_point(tmp_path, capsys, monkeypatch):
    run = tmp_path / "r"
    args = ["train", "cartpole", "--seeds", 2, "--steps", 4000, *SMALL, "--set", "eval.every=1000", "--out", tmp_path,
            "--name", "r"]  # fmt: skip
    on_disk = []
    real_train = runner.train

    def interrupted_train(*a, on_chunk=None, **kw):
        def hook(steps, rows):
            on_chunk(steps, rows)
            on_disk.append(read_tb(run / "tb")["mean/eval_return"][-1][0])  # read while the writer is open
            if steps == 3000:  # Ctrl-C arrives after chunk 3 of 4
                raise KeyboardInterrupt

        return real_train(*a, on_chunk=hook, **kw)

    monkeypatch.setattr(runner, "train", interrupted_train)
    rc, _, err = rlx(capsys, *args)
    assert rc == 130 and "--resume" in err
    assert on_disk == [1000, 2000, 3000]  # every chunk's scalars were on disk at its boundary
    monkeypatch.setattr(runner, "train", real_train)
    # As if the process had died between writing chunk 3 and saving its checkpoint: resume restores step 2000.
    shutil.rmtree(run / "checkpoints" / "3000")
    rc, _, err = rlx(capsys, *args, "--resume")
    assert rc == 0, err
    rows = metrics(run)
    assert sorted({r["steps"] for r in rows}) == [1000, 2000, 3000, 4000]
    assert_same(read_tb(run / "tb"), expected(rows))
    # the first process's point at step 3000 is still in its file; the reader drops it at the resume
    assert [s for s, _ in read_tb(run / "tb", purge=False)["mean/eval_return"]] == [1000, 2000, 3000, 3000, 4000]


GRID = """
from rlx.experiment import Experiment
EXPERIMENT = Experiment(
    name="tb", env="cartpole", seeds=2, steps=2000,
    set={"dqn.learning_starts": 500, "dqn.target_every": 100, "eval.every": 1000, "dqn.buffer_size": 1000,
         "eval.episodes": 2},
    grid={"lr": [1e-3, 3e-4]},
)
"""


@pytest.mark.slow
def test_sweep_group_writes_one_tree_per_cell(tmp_path):
    module = tmp_path / "tb.py"
    module.write_text(GRID)
    sweep.prepare(load(str(module)), tmp_path / "s", 2)
    sweep.run_group(tmp_path / "s", 0)  # the group's two cells, as `rlx sweep` runs them
    group = sweep.group_dir(tmp_path / "s", 0)
    assert sorted(p.name for p in (group / "tb").iterdir()) == ["lr=0.0003", "lr=0.001"]
    rows = metrics(group)
    for pos, name in enumerate(["lr=0.001", "lr=0.0003"]):
        assert_same(read_tb(group / "tb" / name), expected([r for r in rows if r["cell"] == pos]))
    assert read_tb(group / "tb" / "lr=0.001")["mean/loss"] != read_tb(group / "tb" / "lr=0.0003")["mean/loss"]


def test_cell_tree_names(tmp_path):
    tb = tmp_path / "tb"
    assert tensorboard.cell_dirs(tmp_path, 1) == [tb]
    assert tensorboard.cell_dirs(tmp_path, 2) == [tb / "cell_0", tb / "cell_1"]
    assert tensorboard.cell_dirs(tmp_path, 1, ["noise=param lr=0.001"]) == [tb / "noise=param,lr=0.001"]
    # names that become the same directory name are told apart by their position
    assert tensorboard.cell_dirs(tmp_path, 2, ["env=ALE/Pong", "env=ALE:Pong"]) == [tb / "0_env=ALE_Pong",
                                                                                  tb / "1_env=ALE_Pong"]  # fmt: skip
    with pytest.raises(ValueError, match="1 cell names for 2 cells"):
        tensorboard.cell_dirs(tmp_path, 2, ["x"])


def test_scalars_leave_out_what_metrics_jsonl_writes_as_null():
    rows = [{"seed": 0, "chunk": 1, "steps": 5, "loss": 1.0, "q": math.nan, "delta": math.inf},
            {"seed": 1, "chunk": 1, "steps": 5, "loss": 3.0, "q": 2.0, "delta": 0.5}]  # fmt: skip
    assert tensorboard.scalars(rows) == {"seed_0/loss": 1.0, "seed_1/loss": 3.0, "seed_1/q": 2.0, "seed_1/delta": 0.5,
                                         "mean/loss": 2.0, "mean/q": 2.0, "mean/delta": 0.5}  # fmt: skip
