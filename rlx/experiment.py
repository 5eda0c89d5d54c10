"""Experiment: the declarative spec of a run (env, agent, exploration, seeds, budget, overrides).

An experiment module defines `EXPERIMENT = Experiment(...)` and reads like a table:

    EXPERIMENT = Experiment(name="cartpole", env="cartpole", noise="eps", seeds=8, steps=500_000,
                            set={"optim.lr": 2.5e-4})
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from rlx import config as C
from rlx.errors import UserError, did_you_mean

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


@dataclass(frozen=True)
class Experiment:
    """What to run: top-level choices plus dotted-key overrides of the config defaults."""

    name: str
    env: str = "cartpole"
    agent: str = "dqn"
    noise: str = "eps"
    seeds: int = 1
    steps: int | None = None
    set: dict = field(default_factory=dict)
    description: str = ""
    # Axes that `rlx sweep` varies: {key: [values]}. A key is a config key or its last part ("lr"); a value may
    # be a dict of settings that go together (its entry under the axis name, if any, labels it).
    grid: dict = field(default_factory=dict)
    # Statistics per cell that `rlx sweep` adds to its table, results.csv and figures (rlx.sweep.STATS):
    # "score" (best greedy return over the run), "auc" (mean greedy return over the run), or a metric's
    # final value, e.g. "srank", "dormant_0.025", "saturated".
    report: tuple = ()
    # How `rlx sweep --launcher slurm` asks for each job (rlx.cluster.LauncherSettings: partition, time_min,
    # cpus_per_task, gpus_per_task, mem_gb, account, nodes, sbatch); `--set launcher.KEY=VALUE` overrides them.
    # They shape the jobs, not the runs: changing them does not make another sweep.
    launcher: dict = field(default_factory=dict)
    path: str = ""  # the module this experiment was loaded from (set by load)

    def config(self) -> C.Config:
        """Resolve to a type-checked Config (defaults, then this experiment's settings)."""
        top = {"env": self.env, "agent": self.agent, "noise": self.noise}
        if self.steps is not None:
            top["steps"] = self.steps
        return C.apply_overrides(C.Config(), {**top, **self.set})


@dataclass(frozen=True)
class SentimentExperiment:
    """A sentiment-neuron study for `rlx probe-sentiment --experiment NAME`: language-model settings
    (rlx.sentiment.lm.LMConfig fields), seeds, and the data-efficiency repetitions."""

    name: str
    description: str = ""
    seeds: int = 1
    lm: dict = field(default_factory=dict)
    reps: int = 10
    path: str = ""


def available() -> list[str]:
    """Names of the experiment modules shipped in experiments/."""
    return sorted(p.stem for p in EXPERIMENTS_DIR.glob("*.py") if not p.stem.startswith("_"))


def load(name_or_path: str, kind: type | tuple = Experiment):
    """Load EXPERIMENT from experiments/NAME.py or from a path to a user's module; it must be of `kind`."""
    path = Path(name_or_path)
    if not path.suffix == ".py":
        path = EXPERIMENTS_DIR / f"{name_or_path}.py"
        if not path.exists():
            raise UserError(f"unknown experiment '{name_or_path}'.{did_you_mean(name_or_path, available())}")
    if not path.is_file():
        raise UserError(f"experiment file {path} does not exist; give a path to a .py file or a name from `rlx list`.")
    spec = importlib.util.spec_from_file_location(f"rlx_experiment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"experiment file {path} failed to load: {type(e).__name__}: {e}") from None
    exp = getattr(module, "EXPERIMENT", None)
    if isinstance(exp, SentimentExperiment) and not isinstance(exp, kind):
        raise UserError(f"{path.stem} is a sentiment-neuron study; run it with `rlx probe-sentiment --experiment {path.stem}`.")
    if isinstance(exp, Experiment) and not isinstance(exp, kind):
        raise UserError(f"{path.stem} is an RL experiment; run it with `rlx train --experiment` or `rlx sweep`.")
    if not isinstance(exp, kind):
        raise UserError(f"{path} must define EXPERIMENT = Experiment(...) (from rlx.experiment import Experiment).")
    return dataclasses.replace(exp, path=str(path.resolve()))
