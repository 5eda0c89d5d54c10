"""Learning, not just running: DQN solves CartPole with ε-greedy and with NoisyNets at the anchor settings.

Parameter noise is not here yet: at these settings it reached a mean greedy return of 427.5 over 4 seeds
(one seed collapsed to 210 at the last evaluation), short of 475; see the issue notes.
"""

import pytest

from rlx import config as C
from rlx import runner
from rlx.experiment import load
from rlx.results import RunDir


@pytest.mark.parametrize("noise", ["eps", "noisy"])
def test_dqn_solves_cartpole(tmp_path, noise):
    # The shipped experiment's settings (the anchor's), 4 seeds, 500k env steps each.
    cfg = load("cartpole").config()
    assert cfg.steps == 500_000
    cfg = C.apply_overrides(cfg, {"noise": noise, "eval.every": 100_000})  # fewer evaluations; same training
    summary = runner.train(cfg, 4, RunDir(tmp_path / noise))
    per_seed = summary["eval_return"]["per_seed"]
    assert len(per_seed) == 4
    assert summary["eval_return"]["mean"] >= 475, per_seed
