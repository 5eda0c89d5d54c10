"""DQN with ε-greedy on CartPole at the anchor's settings (PureJaxRL's DQN): the `make demo` run."""

from rlx.experiment import Experiment

EXPERIMENT = Experiment(
    name="cartpole",
    description="DQN + eps-greedy on CartPole, anchor settings",
    env="cartpole",
    noise="eps",
    seeds=8,
    steps=500_000,
    set={
        "dqn.num_envs": 10,
        "net.hidden": (120, 84),
        "dqn.batch_size": 128,
        "dqn.buffer_size": 10_000,
        "dqn.learning_starts": 10_000,
        "explore.eps_start": 1.0,
        "explore.eps_end": 0.05,
        "explore.eps_decay_steps": 250_000,
        "dqn.train_every": 10,
        "dqn.target_every": 500,
        "optim.lr": 2.5e-4,
    },
)
