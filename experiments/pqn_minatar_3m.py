"""pqn_minatar at 3M env steps per seed: does PQN catch up with DQN on MinAtar Breakout? (docs/results.md: no)

The same cells as experiments/pqn_minatar.py, with PQN's ε decay kept at 10% of the (larger) budget as in the
authors' settings, and an evaluation every 131,072 steps. About 50 minutes on 2 CPU cores.
"""

import dataclasses

from rlx.experiment import load

STEPS = 3_000_000

_base = load("pqn_minatar")
_pqn, _dqn = _base.grid["agent"]

EXPERIMENT = dataclasses.replace(
    _base,
    name="pqn_minatar_3m",
    description="MinAtar Breakout: PQN (the authors' settings) vs Double DQN, 3M env steps, 4 seeds",
    steps=STEPS,  # whole blocks: PQN runs 3,002,368, DQN 3,003,000
    set={**_base.set, "explore.eps_decay_steps": STEPS // 10, "eval.every": 131_072},
    grid={"agent": [{**_pqn, "explore.eps_decay_steps": STEPS // 10}, _dqn]},
)
