"""Atari Pong (ALE, real ROM): PQN with ε-greedy, adaptive parameter noise and NoisyNets, 4 seeds.

Settings follow PQN's Atari recipe (Gallici et al. 2024): 128 envs per seed, rollouts of 32 steps,
λ = 0.65, 2 epochs x 32 minibatches, RAdam 2.5e-4 with linear decay, gradient norm 10, LayerNorm,
γ = 0.99; ε from 1 to 0.01 over the first 10% of the budget. The budget is 2.56M agent steps per seed
(10.24M frames at frame-skip 4).

Status: these settings have run end to end only at tiny budgets on a CPU (tests/test_atari.py). They
have not been run to a final score: no GPU was available when they were written. Treat them as the
starting point for that run, not as measured results. `rlx sweep pong` runs the noise comparison;
`rlx train --experiment pong --noise param` runs one cell.
"""

from rlx.experiment import Experiment

STEPS = 2_560_000  # a multiple of one block (128 envs x 32 steps = 4096)

EXPERIMENT = Experiment(
    name="pong",
    description="Atari Pong: PQN, eps vs param vs noisy (settings not yet run on a GPU)",
    env="pong",
    agent="pqn",
    noise="param",
    seeds=4,
    steps=STEPS,
    set={
        "pqn.num_envs": 128,
        "pqn.rollout": 32,
        "pqn.lam": 0.65,
        "pqn.epochs": 2,
        "pqn.minibatches": 32,
        "optim.name": "radam",
        "optim.lr": 2.5e-4,
        "optim.lr_decay": True,
        "optim.max_grad_norm": 10.0,
        "td.gamma": 0.99,
        "explore.eps_start": 1.0,
        "explore.eps_end": 0.01,
        "explore.eps_decay_steps": STEPS // 10,
        "eval.every": STEPS // 5,
        "eval.episodes": 4,
    },
    grid={"noise": ["eps", "param", "noisy"]},
)
