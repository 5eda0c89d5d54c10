"""Learning, not just running: DQN with ε-greedy solves CartPole at the anchor settings."""

from rlx import config as C
from rlx import runner
from rlx.experiment import load
from rlx.results import RunDir


def test_dqn_eps_greedy_solves_cartpole(tmp_path):
    # The shipped experiment's settings (the anchor's), 4 seeds, 500k env steps each.
    cfg = load("cartpole").config()
    assert cfg.steps == 500_000 and cfg.noise == "eps"
    cfg = C.apply_overrides(cfg, {"eval.every": 100_000})  # fewer evaluations; training is unchanged
    summary = runner.train(cfg, 4, RunDir(tmp_path / "solve"))
    per_seed = summary["eval_return"]["per_seed"]
    assert len(per_seed) == 4
    assert summary["eval_return"]["mean"] >= 475, per_seed
