"""Prove that a refactor left rlx's behaviour unchanged: same commands, same numbers, bit for bit.

    python bench/same_results.py BASE_REV                # run BASE_REV and the working tree, diff, verdict
    python bench/same_results.py BASE_REV --side base    # only compute the baseline (do it before refactoring)
    python bench/same_results.py BASE_REV --reuse-base   # reuse OUT/base, run the working tree, diff
    python bench/same_results.py BASE_REV --head-rev REV --reuse-base --only cartpole-eps   # base vs REV

Each case in CASES is run twice on this machine, with the code of BASE_REV (extracted by `git archive` into a
scratch directory) and with the working tree (or --head-rev), by the same venv python with PYTHONPATH set
to that code. Both sides use RLX_COMPILE_CACHE=off and write to OUT/<side>/<case>. Then metrics.jsonl,
summary.json (and a sweep's results.csv and groups/g*/) are compared exactly after dropping timing fields
(wall_seconds, compile_seconds, any *_seconds). Exit 0 when every case is identical, 1 otherwise.

Only flags and config keys that exist at 54ce1bd and are unlikely to be renamed are used (no dqn.lr,
dqn.gamma, dqn.optimizer); the sweep's grid says "lr", which resolves to the full key at either revision.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SWEEP_MODULE = "same_results_sweep.py"
SWEEP_SOURCE = '''from rlx.experiment import Experiment

EXPERIMENT = Experiment(name="same_results_sweep", env="cartpole", seeds=2, steps=40000,
                        set={"eval.every": 20000, "dqn.learning_starts": 5000},
                        grid={"lr": [2.5e-4, 1e-3], "noise": ["eps", "param"]})
'''
CARTPOLE = "train cartpole --seeds 2 --steps 60000 --set eval.every=20000 --set dqn.learning_starts=5000"
# Every case has >= 2 chunks (evaluations), so the chunked loop's carry-over between chunks is exercised.
CASES = {
    "cartpole-eps": f"{CARTPOLE} --noise eps",
    "cartpole-param": f"{CARTPOLE} --noise param",
    "cartpole-noisy": f"{CARTPOLE} --noise noisy",
    "cartpole-langevin": f"{CARTPOLE} --noise langevin",
    # chain-10 episodes last 19 steps; eval.every must be a multiple of the chain's target period (100).
    "chain10-param": "train --experiment chain --set env=chain-10 --noise param --seeds 2 --steps 7600 "
                     "--set eval.every=3800 --set explore.eps_decay_steps=3800",
    # steps and eval.every are multiples of pqn.num_envs * pqn.rollout = 512.
    "cartpole-pqn": "train cartpole --agent pqn --seeds 2 --steps 61440 --set eval.every=30720",
    # MinAtar DQN with the diagnostics on (the default).
    "breakout-diag": "train breakout --seeds 2 --steps 20000 --set eval.every=10000 --set dqn.learning_starts=5000",
    "sweep-lr-noise": f"sweep {{scratch}}/{SWEEP_MODULE} --seeds 2",
    "probe-sentiment": "probe-sentiment --hidden 16 --steps 20 --set chunk=10 --reps 1 --seeds 1",
}
# Files compared per case (those present on either side); a sweep has results.csv and groups/g*/.
COMPARED = ["summary.json", "metrics.jsonl", "results.csv", "groups/*/summary.json", "groups/*/metrics.jsonl"]
TIMING_KEYS = {"wall_seconds", "compile_seconds"}
SHOWN = 5  # differing keys shown per file


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


def extract(rev: str, dest: Path) -> Path:
    """The tree of `rev` as plain files (git archive: no worktree metadata, the working tree is untouched)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def rlx_env(code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code), RLX_COMPILE_CACHE="off")
    env.pop("XLA_FLAGS", None)  # rlx sets the CPU device count itself; a caller's flags must not differ by side
    return env


def check_import(code: Path, scratch: Path) -> None:
    """PYTHONPATH must beat the editable install of the working tree, or both sides would run the same code."""
    cmd = [sys.executable, "-c", "import rlx; print(rlx.__file__)"]
    where = subprocess.run(cmd, cwd=scratch, env=rlx_env(code), check=True, capture_output=True, text=True).stdout
    print(f"  import rlx -> {where.strip()}")
    if not Path(where.strip()).resolve().is_relative_to(code.resolve()):
        sys.exit(f"same_results: rlx resolves to {where.strip()}, not to {code}")


def run_side(side: str, code: Path, cases: list[str], out: Path) -> dict:
    """Run each case with the rlx in `code` into out/side/case; returns {case: wall seconds}."""
    side_dir, scratch = out / side, out / "scratch"
    side_dir.mkdir(parents=True, exist_ok=True)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / SWEEP_MODULE).write_text(SWEEP_SOURCE)
    check_import(code, scratch)
    times = {}
    for case in cases:
        shutil.rmtree(side_dir / case, ignore_errors=True)  # a sweep would resume a leftover directory
        args = CASES[case].format(scratch=scratch).split() + ["--out", str(side_dir), "--name", case]
        cmd = [sys.executable, "-c", "import sys; from rlx.cli import main; sys.exit(main())", *args]
        print(f"  [{side}] {case}: rlx {' '.join(args)}", flush=True)
        start = time.perf_counter()
        with open(side_dir / f"{case}.log", "w") as log:
            rc = subprocess.run(cmd, cwd=scratch, env=rlx_env(code), stdout=log, stderr=subprocess.STDOUT).returncode
        times[case] = round(time.perf_counter() - start, 1)
        print(f"  [{side}] {case}: exit {rc}, {times[case]} s", flush=True)
        if rc != 0:
            print(f"  [{side}] {case} failed; see {side_dir / case}.log", flush=True)
    return times


def strip_timing(x):
    """Drop wall_seconds, compile_seconds and any *_seconds, at any depth (cells lists, lm dicts)."""
    if isinstance(x, dict):
        return {k: strip_timing(v) for k, v in x.items() if k not in TIMING_KEYS and not k.endswith("_seconds")}
    if isinstance(x, list):
        return [strip_timing(v) for v in x]
    return x


def flatten(x, prefix: str = "") -> dict:
    """{"a.b[2].c": leaf}, so a difference is reported by where it is."""
    if isinstance(x, dict):
        return {k: v for key, val in x.items() for k, v in flatten(val, f"{prefix}.{key}" if prefix else key).items()}
    if isinstance(x, list):
        return {k: v for i, val in enumerate(x) for k, v in flatten(val, f"{prefix}[{i}]").items()}
    return {prefix: x}


def load(path: Path):
    """A compared file as plain data; CSV cells stay strings (they are what was written)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    return json.loads(path.read_text())


def as_float(v):
    try:
        return float(v) if not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None


def same(a, b) -> bool:
    fa, fb = as_float(a), as_float(b)
    return a == b or (fa is not None and fb is not None and math.isnan(fa) and math.isnan(fb))


def diff_file(a: Path, b: Path) -> list[str]:
    """Differences between two compared files, empty if identical after dropping timing fields."""
    if not (a.exists() and b.exists()):
        return [f"only in {'base' if a.exists() else 'head'}"]
    fa, fb = flatten(strip_timing(load(a))), flatten(strip_timing(load(b)))
    keys = sorted(fa.keys() | fb.keys(), key=lambda k: (k not in fa or k not in fb, k))
    bad = [k for k in keys if k not in fa or k not in fb or not same(fa[k], fb[k])]
    out = [f"{k}: {fa.get(k, '<missing>')!r} vs {fb.get(k, '<missing>')!r}" for k in bad[:SHOWN]]
    deltas = [abs(as_float(fa[k]) - as_float(fb[k])) for k in bad
              if k in fa and k in fb and as_float(fa[k]) is not None and as_float(fb[k]) is not None]
    if bad:
        more = f"{len(bad)} differing keys" + (f", max abs diff {max(deltas):.3g}" if deltas else "")
        out.append(more)
    return out


def compare_case(case: str, out: Path, head: str) -> bool:
    """Print the verdict of one case; True when identical."""
    a, b = out / "base" / case, out / head / case
    rel = sorted({p.relative_to(d).as_posix() for d in (a, b) for pat in COMPARED for p in d.glob(pat)})
    if "summary.json" not in rel:
        print(f"{case:20s} MISSING  no summary.json on either side (did it run? see {out}/*/{case}.log)")
        return False
    problems = {r: diff_file(a / r, b / r) for r in rel}
    problems = {r: p for r, p in problems.items() if p}
    print(f"{case:20s} {'differs' if problems else 'identical'}  ({len(rel)} files)")
    for r, lines in problems.items():
        print(f"    {r}:")
        for line in lines:
            print(f"      {line}")
    return not problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("base_rev", help="git revision of the reference code, e.g. 54ce1bd")
    p.add_argument("--out", type=Path, default=Path("/work/same_results"))
    p.add_argument("--only", help="comma-separated cases: " + ", ".join(CASES))
    p.add_argument("--side", choices=["both", "base", "head"], default="both",
                   help="base: only compute the baseline; head: only run the head side, then compare with OUT/base")
    p.add_argument("--reuse-base", action="store_true", help="do not re-run base cases already in OUT/base")
    p.add_argument("--head-rev", help="compare against this revision instead of the working tree")
    p.add_argument("--keep", action="store_true", help="keep the extracted code of the revision(s)")
    args = p.parse_args()
    cases = args.only.split(",") if args.only else list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"same_results: unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    out = args.out.resolve()
    base_sha = git("rev-parse", "--verify", f"{args.base_rev}^{{commit}}")
    head_sha = git("rev-parse", "--verify", f"{args.head_rev}^{{commit}}") if args.head_rev else None
    # A --head-rev run gets its own directory, so it never overwrites a working-tree run.
    head = f"head-{head_sha[:7]}" if head_sha else "head"
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="code-", dir=out))
    try:
        if args.side in ("both", "base"):
            run_base(base_sha, cases, out, tmp, args.reuse_base)
        if args.side in ("both", "head"):
            code = extract(head_sha, tmp / "head") if head_sha else REPO
            what = head_sha or f"working tree at {git('rev-parse', 'HEAD')}" + (" + edits" if git("status", "--porcelain") else "")
            print(f"head: {what} -> {out / head}")
            record_times(out, head, what, run_side(head, code, cases, out))
    finally:
        if args.keep:
            print(f"kept the extracted code in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.side == "base":
        return 0
    print(f"\nbase {base_sha[:7]} vs {head} (timing fields dropped, floats compared exactly):")
    return 0 if all([compare_case(c, out, head) for c in cases]) else 1


def run_base(sha: str, cases: list[str], out: Path, tmp: Path, reuse: bool) -> None:
    """Run the base side, or with --reuse-base only the cases missing from out/base (same revision only)."""
    rev_file = out / "base" / "REV"
    if reuse and rev_file.exists() and rev_file.read_text().strip() != sha:
        sys.exit(f"same_results: {out / 'base'} holds {rev_file.read_text().strip()[:7]}, not {sha[:7]}; drop --reuse-base")
    todo = [c for c in cases if not (reuse and (out / "base" / c / "summary.json").exists())]
    print(f"base: {sha[:7]} -> {out / 'base'}" + (f" (reusing {len(cases) - len(todo)} case(s))" if reuse else ""))
    if todo:
        times = run_side("base", extract(sha, tmp / "base"), todo, out)
        rev_file.write_text(sha + "\n")
        record_times(out, "base", sha, times)


def record_times(out: Path, side: str, what: str, times: dict) -> None:
    """Merge this run's wall times into out/side/times.json (what ran, for the record; never compared)."""
    path = out / side / "times.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    old.update({"code": what, **times})
    path.write_text(json.dumps(old, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
