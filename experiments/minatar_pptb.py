"""Double DQN with and without PPTB (policy path trimming and boosting, Tang et al. 2024) on MinAtar.

The paper's discrete-action setting is MinAtar; this runs Breakout, SpaceInvaders and Asterix with the
MinAtar baseline network (conv 16x3x3, dense 128), 6 seeds per cell, at a CPU-sized budget of 150k env
steps (the MinAtar baselines train for 5M frames: these are early-training numbers, not final scores).
Score = best greedy-evaluation return over the run, AUC = mean greedy return over the run's evaluations
(every 10k steps). PPTB every 2,500 updates over the last 10 snapshots (one per target period), keeping
k = 2 directions per layer and boosting by c_b = 0.5; docs/dynamics.md has what exactly runs.

`rlx sweep minatar_pptb` runs all 6 programs; `rlx show minatar_pptb` lists them.
"""

from rlx.experiment import Experiment

STEPS = 150_000

MINATAR_DQN = {
    "net.hidden": (128,),
    "dqn.num_envs": 4,
    "dqn.train_every": 4,
    "dqn.batch_size": 32,
    "dqn.buffer_size": 50_000,
    "dqn.learning_starts": 5_000,
    "dqn.target_every": 1_000,
    "optim.lr": 2.5e-4,
    "td.gamma": 0.99,
    "dqn.loss": "huber",
    "optim.max_grad_norm": 10.0,
    "explore.eps_start": 1.0,
    "explore.eps_end": 0.05,
    "explore.eps_decay_steps": 50_000,
    "eval.every": 10_000,
    "eval.episodes": 10,
}

EXPERIMENT = Experiment(
    name="minatar_pptb",
    description="MinAtar Double DQN with and without PPTB: Score and AUC, 6 seeds",
    env="breakout",
    noise="eps",
    seeds=6,
    steps=STEPS,
    set={
        **MINATAR_DQN,
        "pptb.every_updates": 2_500,  # T_p; the window's 10 snapshots are one target period (250 updates) apart
        "pptb.window": 10,
        "pptb.k": 2,
        "pptb.boost": 0.5,
    },
    report=("score", "auc"),
    grid={
        "env": ["breakout", "spaceinvaders", "asterix"],
        "pptb": [{"pptb": "off", "pptb.enabled": False}, {"pptb": "on", "pptb.enabled": True}],
    },
)
