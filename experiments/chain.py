"""The N-chain figure of Plappert et al. 2018 (Fig. 4): episodes until the greedy policy is optimal 100
times in a row, versus chain length N, for ε-greedy, adaptive parameter noise and NoisyNets.

`rlx sweep chain` (or `make chain`) runs every cell (5 seeds vmapped per cell) and writes the table and
episodes_to_solve.png. One cell: `rlx train --experiment chain --set env=chain-50 --set steps=118000 ...`.
"""

from rlx.envs.chain import episode_length
from rlx.experiment import Experiment

EPISODES = 2000  # cap per run
EPS_DECAY_EPISODES = 1000  # ε from 1 to 0.1 over the first 1000 episodes


def chain(n: int) -> dict:
    """chain-N with its budget in steps (episodes of chain-N all have the same length)."""
    length = episode_length(n)
    return {
        "env": f"chain-{n}",
        "steps": EPISODES * length,
        "explore.eps_decay_steps": EPS_DECAY_EPISODES * length,
        # four chunks (evaluations, checkpoints) per run; a multiple of the target period (100)
        "eval.every": EPISODES * length // 4 // 100 * 100,
    }


EXPERIMENT = Experiment(
    name="chain",
    description="N-chain: episodes to solve, eps vs param vs noisy",
    env="chain-30",
    noise="param",
    seeds=5,
    steps=EPISODES * episode_length(30),
    set={
        "net.hidden": (16, 16),
        "net.layer_norm": True,
        "optim.lr": 1e-3,
        "dqn.batch_size": 32,
        "td.gamma": 0.999,
        "dqn.target_every": 100,
        "dqn.buffer_size": 10_000,
        "dqn.num_envs": 1,
        "dqn.train_every": 1,
        "dqn.learning_starts": 1_000,
        "explore.eps_start": 1.0,
        "explore.eps_end": 0.1,
        "explore.eps_decay_steps": EPS_DECAY_EPISODES * episode_length(30),
        "eval.every": EPISODES * episode_length(30) // 4 // 100 * 100,
        "eval.episodes": 1,
    },
    grid={
        "env": [chain(n) for n in (10, 20, 30, 50, 75, 100)],
        "noise": ["eps", "param", "noisy"],
    },
)
