"""CartPole DQN at the anchor settings: learning rate x exploration strategy, 4 seeds per cell.

`rlx show cartpole_lr`: one compiled program per noise, its four learning rates (x 4 seeds) vmapped together.
"""

import dataclasses

from rlx.experiment import load

EXPERIMENT = dataclasses.replace(
    load("cartpole"),
    name="cartpole_lr",
    description="CartPole DQN: lr x noise grid, 4 seeds",
    seeds=4,
    grid={
        "noise": ["eps", "param", "noisy"],
        "lr": [1e-4, 2.5e-4, 5e-4, 1e-3],
    },
)
