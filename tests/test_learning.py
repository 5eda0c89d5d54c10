"""Learning, not just running: DQN solves CartPole with ε-greedy, parameter noise and NoisyNets, and
adaptive parameter noise keeps its policy distance at the target δ."""

import numpy as np
import pytest

from rlx import config as C
from rlx import runner
from rlx.experiment import load
from rlx.results import RunDir


def _cartpole(tmp_path, noise):
    # The shipped experiment's settings (the anchor's), 4 seeds, 500k env steps each.
    cfg = load("cartpole").config()
    assert cfg.steps == 500_000
    cfg = C.apply_overrides(cfg, {"noise": noise, "eval.every": 100_000})  # fewer evaluations; same training
    run = RunDir(tmp_path / noise)
    summary = runner.train(cfg, 4, run)
    return summary, run.read_metrics()


@pytest.mark.parametrize("noise", ["eps", "noisy", "param"])
def test_dqn_solves_cartpole(tmp_path, noise):
    summary, rows = _cartpole(tmp_path, noise)
    per_seed = summary["eval_return"]["per_seed"]
    assert len(per_seed) == 4
    assert summary["eval_return"]["mean"] >= 475, per_seed
    if noise == "param":
        # Mechanism: after warm-up the chunk-mean distance d tracks δ(ε) within ±25% (mean over seeds).
        for step in sorted({r["steps"] for r in rows})[1:]:
            d = np.mean([r["dist"] for r in rows if r["steps"] == step])
            delta = np.mean([r["delta"] for r in rows if r["steps"] == step])
            assert abs(d / delta - 1) <= 0.25, (step, d, delta)
        assert (tmp_path / noise / "param_noise.png").stat().st_size > 1000
