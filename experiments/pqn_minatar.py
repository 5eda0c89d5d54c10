"""PQN against Double DQN on MinAtar Breakout at the same env steps, 4 seeds each.

PQN uses the PQN authors' MinAtar settings (Gallici et al. 2024; purejaxql config `pqn_minatar`): 128 envs x 32
steps per rollout, 2 epochs x 32 minibatches, RAdam 5e-4 decaying linearly to 0, gradient norm 10, LayerNorm,
γ 0.99, λ 0.65, ε from 1 to 0.05 over the first 10% of the budget. DQN uses rlx's MinAtar settings (those of
experiments/minatar_pptb.py, PPTB off). Both read the MinAtar baseline network (conv 16x3x3, dense 128).

The budget, 1M env steps per seed, is a CPU budget (about 20 minutes for both cells on 2 cores): the authors
train for 10M. `rlx sweep pqn_minatar` runs
both cells; `rlx train --experiment pqn_minatar` runs PQN alone.
"""

from rlx.experiment import Experiment, load

STEPS = 1_000_000

PQN_MINATAR = {
    "agent": "pqn",
    "pqn.num_envs": 128,
    "pqn.rollout": 32,
    "pqn.epochs": 2,
    "pqn.minibatches": 32,
    "pqn.lam": 0.65,
    "optim.name": "radam",
    "optim.lr": 5e-4,
    "optim.lr_decay": True,
    "optim.max_grad_norm": 10.0,
    "td.gamma": 0.99,
    "explore.eps_start": 1.0,
    "explore.eps_end": 0.05,
    "explore.eps_decay_steps": STEPS // 10,
}

# minatar_pptb's DQN settings without PPTB; the network and evaluation are set below for both cells.
# The base settings are PQN's, so the DQN cell also resets the optimizer to minatar_pptb's (Adam, constant lr).
DQN_MINATAR = {"agent": "dqn", "optim.name": "adam", "optim.lr_decay": False,
               **{k: v for k, v in load("minatar_pptb").set.items() if not k.startswith(("pptb.", "eval.", "net."))}}  # fmt: skip

EXPERIMENT = Experiment(
    name="pqn_minatar",
    description="MinAtar Breakout: PQN (the authors' settings) vs Double DQN, same env steps, 4 seeds",
    env="breakout",
    agent="pqn",
    noise="eps",
    seeds=4,
    steps=STEPS,  # whole blocks: PQN runs 1,003,520 (245 rollouts of 4,096), DQN 1,000,000
    set={**PQN_MINATAR, "net.hidden": (128,), "eval.every": 65_536, "eval.episodes": 10},
    grid={"agent": [PQN_MINATAR, DQN_MINATAR]},
    report=("score", "auc"),
)
