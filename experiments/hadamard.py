"""The representation layer of a MinAtar DQN (Kooi et al. 2024, Hadamard representations): ReLU, tanh,
tanh ⊙ tanh, ReLU ⊙ ReLU, and a tanh layer widened to the Hadamard layer's parameter count (the control
that asks whether the gain is just more parameters). Breakout and SpaceInvaders, the DQN settings
and 150k-step budget of minatar_pptb (without PPTB), 4 seeds per cell (10 programs: a CPU budget). Reported with return: srank, erank, dormant and
saturated-tanh fractions of the representation, measured every 10k steps on a fixed probe batch.

`rlx sweep hadamard` runs all 10 programs.
"""

import dataclasses

from rlx.experiment import load

_base = load("minatar_pptb")

EXPERIMENT = dataclasses.replace(
    _base,
    name="hadamard",
    description="MinAtar DQN representation layer: relu / tanh / hadamard tanh / hadamard relu / wide tanh",
    seeds=4,
    report=("score", "auc", "srank", "erank", "dormant_0", "dormant_0.025", "saturated"),
    set={k: v for k, v in _base.set.items() if not k.startswith("pptb.")},
    grid={
        "env": ["breakout", "spaceinvaders"],
        # "representation" is a label only (not a config key): each entry sets net.activation and net.head
        "representation": [
            {"representation": "relu", "net.activation": "relu", "net.head": "plain"},
            {"representation": "tanh", "net.activation": "tanh", "net.head": "plain"},
            {"representation": "hadamard_tanh", "net.activation": "tanh", "net.head": "hadamard"},
            {"representation": "hadamard_relu", "net.activation": "relu", "net.head": "hadamard"},
            {"representation": "wide_tanh", "net.activation": "tanh", "net.head": "wide"},
        ],
    },
)
