"""Studies that run several cells of an experiment and draw one figure (until `rlx sweep` exists).

    python -m rlx.studies chain [--seeds 5] [--episodes 2000] [--out runs/chain-study]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rlx import config as C
from rlx import plots, runner
from rlx.experiment import load
from rlx.results import RunDir


def chain_cell(exp, module, env: str, noise: str, episodes: int):
    """Config of one chain cell: the experiment's settings with the budget and ε decay scaled to N+9 steps."""
    length = int(env.split("-")[1]) + 9
    steps = episodes * length
    over = {
        "env": env,
        "noise": noise,
        "steps": steps,
        "explore.eps_decay_steps": module.EPS_DECAY_EPISODES * length,
        # four chunks per run; a multiple of the target period (100) because 500 * length is
        "eval.every": max(steps // 4 // 100 * 100, 100),
    }
    return C.apply_overrides(exp.config(), over)


def chain(seeds: int, episodes: int, out: Path) -> list[dict]:
    """Run every (N, noise) cell of experiments/chain.py; write results.json, a table and the figure."""
    import importlib.util

    from rlx.experiment import EXPERIMENTS_DIR

    spec = importlib.util.spec_from_file_location("chain_exp", EXPERIMENTS_DIR / "chain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    exp = load("chain")
    runner.enable_compile_cache()
    rows = []
    for env in module.GRID["env"]:
        for noise in module.GRID["noise"]:
            cfg = chain_cell(exp, module, env, noise, episodes)
            run_dir = out / f"{env}-{noise}"
            resume = (run_dir / "summary.json").exists()
            if resume:
                summary = json.loads((run_dir / "summary.json").read_text())
            else:
                summary = runner.train(cfg, seeds, RunDir(run_dir, resume=(run_dir / "config.json").exists()))
            e = summary["episodes_to_solve"]
            row = {"env": env, "n": int(env.split("-")[1]), "noise": noise, **e, "seeds": seeds, "episodes_cap": episodes}
            rows.append(row)
            print(f"{env:10s} {noise:6s} solved {e['solved']}/{seeds}  median {e['median']}  per seed {e['per_seed']}", flush=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    plots.episodes_to_solve(rows, out / "episodes_to_solve.png", cap=episodes)
    return rows


def main(argv=None) -> None:
    """Command-line entry for the studies."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=["chain"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=Path("runs/chain-study"))
    args = ap.parse_args(argv)
    chain(args.seeds, args.episodes, args.out)


if __name__ == "__main__":
    main()
