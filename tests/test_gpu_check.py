"""bench/gpu_check.py --tiny: the GPU check's whole path (setup check, workers under budgets, rates, the Pong eval
curve from the run directory, both outputs) at CPU sizes, so that the script is known to work before a GPU machine
is lent: a lease is too short to debug it there."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_tiny_gpu_check_measures_everything_and_writes_the_table(tmp_path):
    cmd = [sys.executable, "bench/gpu_check.py", "--tiny", "--out", str(tmp_path)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rep["device"]["jax"] and rep["device"]["devices"] and rep["setup"]["errors"] == []
    m = rep["measurements"]
    assert set(m) == {"cartpole_dqn_1", "cartpole_dqn_2", "lm_mlstm", "pong_pqn_param"}
    for name, r in m.items():
        assert r["error"] is None, (name, r["error"])
        assert r["throughput"] > 0 and r["run_s"] > 0 and r["compile_s"] > 0, (name, r)
    for n in (1, 2):
        r = m[f"cartpole_dqn_{n}"]
        assert r["seeds"] == n and r["steps"] > 0 and r["wall_s"] > r["compile_s"] and r["last_chunk_env_steps_per_s"] > 0
    pong = m["pong_pqn_param"]
    assert pong["steps"] > 0 and pong["chunks"] >= 2 and len(pong["eval_curve"]) == pong["chunks"]
    for point in pong["eval_curve"]:
        assert len(point["per_seed"]) == 2 and -21 <= point["mean"] <= 21  # Pong's unclipped score
    assert m["lm_mlstm"]["ms_per_update"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| measurement | settings | wall s | compile s | run s | throughput |" in table
    assert table.count("| CartPole DQN, ") == 2 and "| Pong PQN, parameter noise |" in table and "| mLSTM-64 LM" in table
    assert "error:" not in table and "Pong greedy eval return" in table
