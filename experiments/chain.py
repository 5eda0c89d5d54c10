"""The N-chain figure of Plappert et al. 2018 (Fig. 4): episodes until the greedy policy is optimal 100
times in a row, versus chain length N, for ε-greedy, adaptive parameter noise and NoisyNets.

`make chain` runs every cell of GRID (5 seeds vmapped per cell) and writes the table and the figure.
One cell: `rlx train chain-30 --noise param --experiment chain` (with the budget below in steps).
"""

from rlx.experiment import Experiment

EPISODES = 2000  # cap per run; a run's steps = EPISODES * (N + 9)
EPS_DECAY_EPISODES = 1000  # ε from 1 to 0.1 over the first 1000 episodes

GRID = {
    "env": ["chain-10", "chain-20", "chain-30", "chain-50", "chain-75", "chain-100"],
    "noise": ["eps", "param", "noisy"],
}

EXPERIMENT = Experiment(
    name="chain",
    description="N-chain: episodes to solve, eps vs param vs noisy",
    env="chain-30",
    noise="param",
    seeds=5,
    steps=EPISODES * 39,
    set={
        "net.hidden": (16, 16),
        "net.layer_norm": True,
        "dqn.lr": 1e-3,
        "dqn.batch_size": 32,
        "dqn.gamma": 0.999,
        "dqn.target_every": 100,
        "dqn.buffer_size": 10_000,
        "dqn.num_envs": 1,
        "dqn.train_every": 1,
        "dqn.learning_starts": 1_000,
        "explore.eps_start": 1.0,
        "explore.eps_end": 0.1,
        "explore.eps_decay_steps": EPS_DECAY_EPISODES * 39,
        "eval.every": EPISODES * 39 // 4,
        "eval.episodes": 1,
    },
)
