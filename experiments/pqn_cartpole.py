"""PQN on CartPole with the PQN authors' own settings (Gallici et al. 2024; purejaxql `pqn_gymnax.py`, config
`pqn_cartpole`): 32 envs x 64 steps per rollout, 4 epochs x 16 minibatches, a 2x256 MLP with LayerNorm, RAdam
1e-4 decaying linearly to 0, gradient norm 10, ε from 1 to 0.2 over the first 20% of the budget, rewards scaled
by 0.1, γ 0.99, λ 0.95, 500k env steps per seed, 4 seeds.

One difference is kept on purpose: the authors' script treats CartPole's 500-step time limit as a terminal
state; rlx bootstraps through it (a truncated episode's next state is not terminal).
"""

from rlx.experiment import Experiment

STEPS = 500_000

EXPERIMENT = Experiment(
    name="pqn_cartpole",
    description="PQN on CartPole, the authors' settings (purejaxql pqn_cartpole)",
    env="cartpole",
    agent="pqn",
    noise="eps",
    seeds=4,
    steps=STEPS,  # rounded up to whole rollouts of 2,048 env steps: 501,760
    set={
        "pqn.num_envs": 32,
        "pqn.rollout": 64,
        "pqn.epochs": 4,
        "pqn.minibatches": 16,
        "pqn.lam": 0.95,
        "net.hidden": (256, 256),
        "optim.name": "radam",
        "optim.lr": 1e-4,
        "optim.lr_decay": True,
        "optim.max_grad_norm": 10.0,
        "td.gamma": 0.99,
        "td.reward_scale": 0.1,
        "explore.eps_start": 1.0,
        "explore.eps_end": 0.2,
        "explore.eps_decay_steps": STEPS // 5,
        "eval.every": 2048 * 25,
        "eval.episodes": 16,
    },
)
