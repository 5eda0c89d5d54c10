"""The worked example of docs/architecture.md is real: its strategy file, registered with one line, trains."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from rlx import config as C
from rlx import exploration, runner
from rlx.results import RunDir

DOC = Path(__file__).resolve().parent.parent / "docs" / "architecture.md"


def _example_strategy_source() -> str:
    """The python block that follows the example-strategy marker in docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    after = text[text.index("<!-- example-strategy -->"):]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow
def test_the_documented_example_strategy_trains_for_one_chunk(tmp_path, monkeypatch):
    (tmp_path / "boltzmann_example.py").write_text(_example_strategy_source(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "boltzmann_example", raising=False)
    # the one registry line, as a test would add it without editing rlx/exploration/__init__.py
    monkeypatch.setitem(exploration.STRATEGIES, "boltzmann", "boltzmann_example")
    cfg = C.apply_overrides(C.Config(), {
        "env": "cartpole", "noise": "boltzmann", "steps": 1000, "eval.every": 1000, "eval.episodes": 2,
        "dqn.learning_starts": 500, "dqn.target_every": 100, "diag.enabled": False,
    })
    run = RunDir(tmp_path / "run")
    summary = runner.train(cfg, 2, run)
    rows = run.read_metrics()
    assert [r["chunk"] for r in rows] == [1, 1] and summary["steps"] == 1000
    # the strategy's metric is reported as its chunk mean: the temperature follows the explore.* schedule
    expected = np.mean([max(1.0 + min(s / 250_000, 1.0) * (0.05 - 1.0), 1e-3) for s in range(0, 1000, 10)])
    np.testing.assert_allclose([r["temperature"] for r in rows], expected, rtol=1e-5)
    assert all(r["updates"] == 50 and np.isfinite(r["loss"]) for r in rows)
