"""`make bench`: rlx's DQN and PQN against the pure-JAX reference structures, measured in this one run.

Each measurement runs in a fresh subprocess (cold JIT, no shared caches), one after another, so the
ratios compare like with like on this machine. Wall times are printed, but the numbers to quote are
the ratios, measured here and now.

The references are re-implementations (reference_dqn.py, reference_pqn.py) unless RLX_PUREJAXRL or
RLX_PUREJAXQL names a checkout of the authors' sources: then their own dqn.py / pqn_gymnax.py is timed
(anchors.py; nothing of theirs is in this repository).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anchors

ROOT = Path(__file__).resolve().parent.parent


def run_rlx(seeds: int, steps: int, extra: list[str], cache: str = "off", experiment: str = "cartpole") -> dict:
    """`rlx train --experiment cartpole` (the anchor settings) or another experiment, in a subprocess."""
    env = {**os.environ, "RLX_COMPILE_CACHE": cache}
    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable, "-m", "rlx.cli", "train", "--experiment", experiment,
            "--seeds", str(seeds), "--steps", str(steps), "--out", out, "--name", "bench", *extra,
        ]  # fmt: skip
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
        process = time.perf_counter() - t
        s = json.loads((Path(out) / "bench" / "summary.json").read_text())
    return {
        "seeds": seeds,
        "wall": s["wall_seconds"],
        "compile": s["compile_seconds"],
        "process": process,
        "return": s["eval_return"]["mean"],
    }


def run_reference(seeds: int, steps: int) -> dict:
    """PureJaxRL's dqn.py from $RLX_PUREJAXRL when set, else bench/reference_dqn.py (its structure)."""
    code = (
        "import json, sys; sys.path.insert(0, 'bench'); import reference_dqn as r; "
        f"print(json.dumps(r.run({seeds}, {steps})))"
    )
    return _reference("dqn", [sys.executable, "-c", code], "reference (PureJaxRL re-impl.)", seeds, steps)


def run_reference_pqn(seeds: int, steps: int) -> dict:
    """The PQN authors' pqn_gymnax.py from $RLX_PUREJAXQL when set, else bench/reference_pqn.py (their structure)."""
    cmd = [sys.executable, "bench/reference_pqn.py", "--seeds", str(seeds), "--steps", str(steps)]
    return _reference("pqn", cmd, "reference (purejaxql re-impl.)", seeds, steps)


def _reference(kind: str, fallback: list[str], fallback_label: str, seeds: int, steps: int) -> dict:
    """Run the real script of `kind` (anchors.py) when its checkout is given, else the re-implementation command
    `fallback`, which prints its run() as the last JSON line; both in a subprocess."""
    source = anchors.source_from_env(kind)
    t = time.perf_counter()
    if source:
        d, name = anchors.run_real(kind, source, seeds, steps), anchors.label(kind)
    else:
        p = subprocess.run(fallback, check=True, capture_output=True, text=True, cwd=ROOT)
        d, name = json.loads(p.stdout.strip().splitlines()[-1]), fallback_label
    return {
        "label": name,
        "seeds": seeds,
        "wall": d["wall_seconds"],
        "compile": d["compile_seconds"],
        "process": time.perf_counter() - t,
        "return": d["final_return_mean"],
        "per_seed": d.get("final_return_per_seed"),
        "buffer": d.get("buffer", "?"),
    }


def bench_pqn(steps: int, seeds: int = 4) -> None:
    """PQN on CartPole at the authors' settings: `rlx train --experiment pqn_cartpole` against the reference."""
    ref = run_reference_pqn(seeds, steps)
    rlx = run_rlx(seeds, steps, [], experiment="pqn_cartpole")
    print(f"CartPole PQN, the authors' settings (pqn_cartpole), {steps:,} steps x {seeds} seeds, compile cache off")
    for name, r in ((ref["label"], ref), ("rlx train --experiment pqn_cartpole", rlx)):
        print(f"  {name:36s} wall {r['wall']:6.1f} s (compile {r['compile']:4.1f} s, run {r['wall'] - r['compile']:6.1f} s)"
              f"  process {r['process']:6.1f} s  return {r['return']:.1f}")  # fmt: skip
    speedup = ref["wall"] / rlx["wall"]
    print(f"  speed-up of rlx PQN over the reference PQN (wall, compile included): {speedup:.2f}x (goal >= 1.25x)")
    print(f"  greedy return: reference {ref['return']:.1f} (last test during training, per seed "
          f"{[round(x, 1) for x in ref['per_seed']]}), rlx {rlx['return']:.1f} (final evaluation)\n")  # fmt: skip


SWEEP_MODULE = """
import dataclasses
from rlx.experiment import load
EXPERIMENT = dataclasses.replace(load("cartpole"), name="bench_lr", seeds={seeds}, steps={steps}, grid={{"lr": {lrs}}})
"""


def bench_sweep(steps: int, lrs=(1e-4, 2.5e-4, 5e-4, 1e-3), seeds: int = 4) -> None:
    """A CartPole grid of len(lrs) learning rates x seeds: one `rlx sweep` against one `rlx train` per run."""
    env = {**os.environ, "RLX_COMPILE_CACHE": "off"}
    cli = [sys.executable, "-m", "rlx.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp) / "bench_lr.py"
        module.write_text(SWEEP_MODULE.format(seeds=seeds, steps=steps, lrs=list(lrs)))
        t = time.perf_counter()
        subprocess.run([*cli, "sweep", str(module), "--out", tmp, "--name", "s"], check=True, capture_output=True, cwd=ROOT, env=env)
        batched = time.perf_counter() - t
        t = time.perf_counter()
        for lr in lrs:
            for seed in range(seeds):
                cmd = [*cli, "train", "--experiment", "cartpole", "--seeds", "1", "--steps", str(steps), "--set", f"optim.lr={lr}",
                       "--set", f"seed={seed}", "--out", tmp, "--name", f"lr{lr}-s{seed}"]  # fmt: skip
                subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=env)
        separate = time.perf_counter() - t
    runs = len(lrs) * seeds
    print(f"sweep: CartPole, {len(lrs)} learning rates x {seeds} seeds = {runs} runs of {steps:,} steps, compile cache off")
    print(f"  rlx sweep (one program, batched)         process wall {batched:7.1f} s")
    print(f"  {runs} separate rlx train invocations      process wall {separate:7.1f} s")
    print(f"  batched speed-up: {separate / batched:.2f}x (goal >= 3x)\n")


def bench_seed_scaling(steps: int, counts=(1, 8, 64)) -> None:
    """Wall time of CartPole DQN for 1, 8, 64 seeds in one program (the GPU benchmark of the sweep issue)."""
    results = [run_rlx(n, steps, []) for n in counts]
    print(f"seed scaling: CartPole DQN, {steps:,} steps per seed, compile cache off")
    for r in results:
        print(f"  {r['seeds']:3d} seeds  wall {r['wall']:7.1f} s (compile {r['compile']:5.1f} s)  return {r['return']:.1f}")
    print(f"  {counts[-1]} seeds / {counts[0]} seed wall time: {results[-1]['wall'] / results[0]['wall']:.2f}x (goal <= 3x)\n")


PAPER_BYTES_PER_SECOND = 12_500  # Radford et al. 2017: 4096-unit mLSTM on 4 Pascal GPUs


def bench_lm(hidden: int, batch: int, window: int, updates: int = 20, chunks: int = 3) -> float:
    """Language-model training throughput (bytes/s per seed): the compiled chunk plus the host byte streams,
    timed after one warm-up chunk, on the default corpus."""
    import jax
    import jax.numpy as jnp

    from rlx.sentiment import data, lm, study

    with tempfile.TemporaryDirectory() as d:
        corpus = study.lm_corpus(data.default_splits(), None, Path(d))
        cfg = lm.LMConfig(hidden=hidden, batch=batch, window=window, steps=updates * (chunks + 1))
        init, chunk = lm.make_train(cfg)
        run = jax.jit(chunk, donate_argnums=0)
        streams = lm.ByteStreams(corpus, batch, window)
        state = jax.jit(init)(jax.random.PRNGKey(0))
        state, loss = run(state, jnp.asarray(streams.take(updates)))
        jax.block_until_ready(loss)
        t = time.perf_counter()
        for _ in range(chunks):
            state, loss = run(state, jnp.asarray(streams.take(updates)))
        jax.block_until_ready(loss)
        dt = time.perf_counter() - t
        streams.close()
    rate = chunks * updates * batch * window / dt
    dtype = jnp.dtype(cfg.compute_dtype()).name
    print(f"  LM hidden {hidden:5d}, batch {batch} x window {window}, {dtype} matmuls: {rate:10,.0f} bytes/s "
          f"({dt / (chunks * updates) * 1000:.0f} ms/update), {rate / PAPER_BYTES_PER_SECOND:.2f}x the paper's "
          f"{PAPER_BYTES_PER_SECOND:,} bytes/s")
    return rate


def bench_dynamics(steps: int = 20_000, seeds: int = 6) -> None:
    """What the learning-dynamics tools cost: MinAtar Breakout at the minatar_pptb settings, one chunk per
    10k steps, each variant's wall time (compile excluded) against the same run without it."""
    print(f"learning-dynamics tools, MinAtar Breakout (experiments/minatar_pptb.py), {steps:,} steps x {seeds} seeds")
    base = ["--set", "eval.every=10000"]
    variants = [
        ("diagnostics off", ["--set", "diag.enabled=false"]),
        ("diagnostics on (default)", []),
        ("+ pptb.enabled=true", ["--set", "pptb.enabled=true"]),
        ("+ path.every_updates=250 (a snapshot per target period)", ["--set", "path.every_updates=250"]),
        ("+ net.head=hadamard, tanh", ["--set", "net.head=hadamard", "--set", "net.activation=tanh"]),
    ]
    runs = [(name, run_rlx(seeds, steps, base + extra, experiment="minatar_pptb")) for name, extra in variants]
    ref = runs[0][1]["wall"] - runs[0][1]["compile"]
    for name, r in runs:
        run_s = r["wall"] - r["compile"]
        print(f"  {name:48s} run {run_s:6.1f} s (compile {r['compile']:4.1f} s)  {run_s / ref:5.2f}x diagnostics off")
    print()


def bench_cnn(iters: int = 20, batch: int = 32, reps: int = 5) -> None:
    """The Nature CNN's gradient on this backend: value_and_grad of a squared loss of Q (batch of uint8 frame stacks)
    and a plain SGD step, `iters` of them in one jitted lax.scan, with the convolutions as lax.conv_general_dilated
    (what nn.Conv runs) and as PatchConv's patches @ kernel, from the same parameters. One process: both programs
    are compiled first, then timed in turn, best of `reps`."""
    import jax
    import jax.numpy as jnp

    from rlx.nets import NatureCNN

    frames = jax.random.randint(jax.random.PRNGKey(0), (iters, batch, 4, 84, 84), 0, 256).astype(jnp.uint8)
    models = {"lax.conv_general_dilated": NatureCNN(6, conv_patches=False), "patches @ kernel": NatureCNN(6, conv_patches=True)}
    params = jax.jit(models["patches @ kernel"].init)(jax.random.PRNGKey(1), frames[0])

    def loop(model):
        def step(p, x):
            loss, g = jax.value_and_grad(lambda p: jnp.mean(model.apply(p, x) ** 2))(p)
            return jax.tree.map(lambda a, b: a - 1e-4 * b, p, g), loss

        return jax.jit(lambda p, xs: jax.lax.scan(step, p, xs))

    runs, compile_s, best = {}, {}, {}
    for name, model in models.items():
        runs[name] = loop(model)
        t = time.perf_counter()
        jax.block_until_ready(runs[name](params, frames))
        compile_s[name] = time.perf_counter() - t
    for _ in range(reps):
        for name, run in runs.items():
            t = time.perf_counter()
            jax.block_until_ready(run(params, frames))
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
    print(f"Nature CNN gradient (batch {batch}, value_and_grad + SGD step), {iters} in one jitted lax.scan, best of {reps}")
    for name in models:
        print(f"  {name:26s} {best[name]:6.2f} s per scan, {best[name] / iters * 1000:7.1f} ms per gradient "
              f"(compile + first run {compile_s[name]:4.1f} s)")
    ratio = best["lax.conv_general_dilated"] / best["patches @ kernel"]
    print(f"  patches @ kernel speed-up over lax.conv: {ratio:.2f}x (goal on CPU: >= 8x)\n")


def main() -> None:
    """Print the benchmark tables and the ratios."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=500_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--sweep-steps", type=int, default=100_000, help="steps per run in the sweep benchmark")
    ap.add_argument("--pqn-steps", type=int, default=500_000, help="steps per seed in the PQN benchmark (4 seeds)")
    ap.add_argument("--part", nargs="+", choices=["dqn", "pqn", "sweep", "seeds", "lm", "dynamics", "cnn"], default=None,
                    help="what to run (default: lm, cnn, dynamics, pqn, dqn and sweep; seeds too on a GPU)")  # fmt: skip
    args = ap.parse_args()
    for kind in [k for k in ("pqn", "dqn") if k in (args.part or ["pqn", "dqn"])]:
        anchors.source_from_env(kind)  # a bad checkout path fails here, before any measurement
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    import jax

    platform_name = jax.devices()[0].platform
    parts = args.part or ["lm", "cnn", "dynamics", "pqn", "dqn", "sweep"] + (["seeds"] if platform_name == "gpu" else [])
    print(f"jax {jax.__version__} on {platform_name}\n")
    if "lm" in parts:
        print("sentiment LM training throughput (bytes per second per seed)")
        bench_lm(256, 32, 128)
        if platform_name == "gpu":
            bench_lm(4096, 128, 256)  # the paper's model and batch
        print()
    if "cnn" in parts:
        bench_cnn()
    if "dynamics" in parts:
        bench_dynamics()
    if "pqn" in parts:
        bench_pqn(args.pqn_steps)
    if "sweep" in parts:
        bench_sweep(args.sweep_steps)
    if "seeds" in parts:
        bench_seed_scaling(args.steps)
    if "dqn" not in parts:
        return
    print(f"CartPole DQN, anchor settings, {args.steps:,} steps per seed\n")
    rows = []
    for seeds in args.seeds:
        ref = run_reference(seeds, args.steps)
        eps = run_rlx(seeds, args.steps, [])
        runs = [(ref["label"], ref), ("rlx train (Double DQN, default)", eps)]
        # name, extra flags, issue 15's goal for its wall time over ε-greedy's
        noise_rows = [
            ("rlx train --noise param", ["--noise", "param"], 1.3),
            ("rlx train --noise noisy", ["--noise", "noisy"], 1.5),
            ("rlx --noise param, param.form=flipout", ["--noise", "param", "--set", "param.form=flipout"], 1.3),
        ]
        noise_runs = [(name, run_rlx(seeds, args.steps, extra), goal) for name, extra, goal in noise_rows]
        runs += [(name, r) for name, r, _ in noise_runs]
        # Parameter noise turns LayerNorm on (the method asks for it); this row separates its cost from the noise's.
        layer_norm = run_rlx(seeds, args.steps, ["--set", "net.layer_norm=true"])
        runs.append(("rlx --noise eps, net.layer_norm=true", layer_norm))
        if seeds == 1:
            runs.append(("rlx, dqn.double=false (ref's algo)", run_rlx(1, args.steps, ["--set", "dqn.double=false"])))
            with tempfile.TemporaryDirectory() as cache:
                run_rlx(1, args.steps, [], cache)  # fills the persistent compile cache
                runs.append(("rlx, warm compile cache", run_rlx(1, args.steps, [], cache)))
        rows.append((seeds, ref, eps))
        print(f"{seeds} seed(s)")
        for name, r in runs:
            run_s = r["wall"] - r["compile"]
            print(
                f"  {name:36s} wall {r['wall']:6.1f} s (compile {r['compile']:4.1f} s, run {run_s:6.1f} s) "
                f"{args.steps * seeds / run_s:8,.0f} env steps/s  process {r['process']:6.1f} s  return {r['return']:.1f}"
            )
        for name, r in runs[1:]:
            print(f"  speed-up of {name.strip()} over the reference (wall, compile included): {ref['wall'] / r['wall']:.2f}x")
        for name, r, goal in noise_runs:
            print(f"  {name} wall / rlx --noise eps wall: {r['wall'] / eps['wall']:.2f}x (goal: <= {goal}x)")
        print(f"  rlx --noise param wall / eps with the same LayerNorm net: {noise_runs[0][1]['wall'] / layer_norm['wall']:.2f}x")
        print()
    if len(rows) > 1:
        one, many = rows[0], rows[-1]
        print(
            f"{many[0]} seeds / 1 seed wall time: rlx {many[2]['wall'] / one[2]['wall']:.2f}x, "
            f"reference {many[1]['wall'] / one[1]['wall']:.2f}x"
        )


if __name__ == "__main__":
    try:
        main()
    except anchors.AnchorError as e:  # a bad RLX_PUREJAXRL / RLX_PUREJAXQL, or their script failed: one line
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(2)
