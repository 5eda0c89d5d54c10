"""Learning, not just running: DQN solves CartPole with ε-greedy, parameter noise and NoisyNets at the anchor
settings, and parameter noise solves chain-30 while keeping its distance d at the target δ.

"Solves within 500k steps": at some greedy evaluation (every 50k steps) the mean over 4 seeds reaches
475. The last evaluation must stay high too; single DQN seeds on CartPole can dip late in training
(one measured run ended at [500, 500, 484, 361] after reaching a 4-seed mean of 500).
"""

import dataclasses

import numpy as np
import pytest

from rlx import runner
from rlx.experiment import load
from rlx.results import RunDir


def _chunk_means(rows, key):
    steps = sorted({r["steps"] for r in rows})
    return steps, [np.mean([r[key] for r in rows if r["steps"] == s]) for s in steps]


def _assert_distance_tracks_delta(rows, after_step):
    """The chunk mean of d (over seeds) stays within ±25% of δ(ε) once past warm-up."""
    steps, dist = _chunk_means(rows, "dist")
    _, delta = _chunk_means(rows, "delta")
    ratios = [d / t for s, d, t in zip(steps, dist, delta, strict=True) if s > after_step]
    assert ratios and all(0.75 <= r <= 1.25 for r in ratios), ratios


@pytest.mark.parametrize("noise", ["eps", "param", "noisy"])
@pytest.mark.slow
def test_dqn_solves_cartpole_within_500k_steps(tmp_path, noise):
    cfg = load("cartpole").config()  # the shipped experiment: the anchor's settings, 500k steps
    assert cfg.steps == 500_000 and cfg.eval.every == 50_000
    cfg = dataclasses.replace(cfg, noise=noise)
    run = RunDir(tmp_path / noise)
    summary = runner.train(cfg, 4, run)
    rows = run.read_metrics()
    steps, curve = _chunk_means(rows, "eval_return")
    assert steps[-1] == 500_000 and len({r["seed"] for r in rows}) == 4
    assert max(curve) >= 475, curve
    assert summary["eval_return"]["mean"] >= 400, summary["eval_return"]["per_seed"]
    if noise == "param":
        # Warm-up: σ starts at 0.01 and moves 1% per adaptation, so it needs the first 100k steps to catch δ.
        _assert_distance_tracks_delta(rows, after_step=100_000)


@pytest.mark.slow
def test_param_noise_solves_chain_30_with_d_at_delta(tmp_path):
    """Two seeds of the chain study's chain-30 cell (2000 episodes): both solve it, and once ε has reached its
    floor (episode 1000) the measured distance stays within ±25% of δ."""
    from rlx import sweep

    exp = load("chain")
    (cell,) = [c for c in sweep.expand(exp) if c.labels == {"env": "chain-30", "noise": "param"}]
    cfg = cell.cfg
    run = RunDir(tmp_path / "chain")
    summary = runner.train(cfg, 2, run)
    assert summary["episodes_to_solve"]["solved"] == 2, summary["episodes_to_solve"]
    _assert_distance_tracks_delta(run.read_metrics(), after_step=cfg.explore.eps_decay_steps)


@pytest.mark.slow
def test_pqn_solves_cartpole_with_the_authors_settings(tmp_path):
    """experiments/pqn_cartpole.py (the PQN authors' CartPole settings): mean greedy return >= 475 over 4 seeds at
    500k steps. Measured: 500 on all 4 seeds (50.9 s wall on the 2-core CPU); the authors' script: 500 on all 4."""
    exp = load("pqn_cartpole")
    summary = runner.train(exp.config(), exp.seeds, RunDir(tmp_path / "pqn"))
    assert summary["steps"] >= 500_000
    assert summary["eval_return"]["mean"] >= 475, summary["eval_return"]["per_seed"]
