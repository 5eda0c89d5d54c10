"""Policy-path analysis of saved parameter snapshots (Tang et al. 2024, "The Ladder in Chaos").

A run trained with `--set path.every_updates=M` keeps RUN_DIR/path/{steps:010d}.npz: "steps" (k,) and, per flax
params leaf ("params/Dense_0/kernel"), an array (batch, k, *leaf_shape); batch is seeds for `rlx train`,
cells x seeds (cell-major) for a sweep group. `path(run_dir)` reads them, runs the temporal SVD of every
layer's path per batch row, measures how far each parameter wandered compared with where it ended up, and
(optionally) evaluates the greedy policy rebuilt from each layer's top-k directions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rlx import diagnostics
from rlx.errors import UserError
from rlx.results import Snapshots, read_snapshots

BETAS = (0.9, 0.99)
# A parameter whose accumulated change is more than twice its net change spent at least half of its
# movement going back and forth. 2 is a readable cut, not a threshold from the paper; the CDF figure
# shows the whole distribution.
DETOUR_CUT = 2.0


def layers(keys) -> list[tuple[str, list[str]]]:
    """[(layer, sorted leaf keys)] in network order: module groups (Conv, Dense, ...) by first appearance,
    then by their trailing index, so Dense_10 follows Dense_9 (the pytree order sorts it after Dense_1).

    The params pytree sorts module names, so LayerNorm_i come after all Dense_j rather than between them.
    """
    by_layer: dict[str, list[str]] = {}
    for k in keys:
        by_layer.setdefault(k.rsplit("/", 1)[0] if "/" in k else k, []).append(k)
    groups: dict[tuple[str, str], int] = {}

    def sort_key(name):
        parent, _, module = name.rpartition("/")
        m = re.fullmatch(r"(.*?)_(\d+)", module)
        prefix, idx = (m.group(1), int(m.group(2))) if m else (module, -1)
        g = groups.setdefault((parent, prefix), len(groups))
        return g, idx

    for name in by_layer:  # first appearance fixes each group's place
        sort_key(name)
    return [(name, sorted(by_layer[name])) for name in sorted(by_layer, key=sort_key)]


def _layer_matrix(snaps: Snapshots, leaf_keys: list[str], b: int) -> np.ndarray:
    """Row b's path of one layer: (n, m) float64, leaves flattened and concatenated in sorted order."""
    n = snaps.n
    return np.concatenate([snaps.leaves[k][b].reshape(n, -1) for k in leaf_keys], axis=1).astype(np.float64)


def _stats(per_row) -> dict:
    a = np.asarray(per_row, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return {"mean": None, "min": None, "max": None, "per_row": a}
    return {"mean": float(finite.mean()), "min": float(finite.min()), "max": float(finite.max()), "per_row": a}


def _read_config(run_dir: Path) -> tuple[list, int, list[int]]:
    """(configs, seeds, cell ids) of a `rlx train` run (one cell, 0) or a sweep group (the sweep's cell
    indices), from RUN_DIR/config.json."""
    from rlx import config as C

    p = run_dir / "config.json"
    try:
        saved = json.loads(p.read_text(encoding="utf-8"))
        raw = saved["configs"] if "configs" in saved else [saved["config"]]
        cfgs = [C.from_dict(c) for c in raw]
        cells = [int(c) for c in saved.get("cells") or range(len(cfgs))]
        if len(cells) != len(cfgs):
            raise ValueError(f"{len(cells)} cells but {len(cfgs)} configs")
        return cfgs, int(saved["seeds"]), cells
    except FileNotFoundError:
        raise UserError(f"no config.json in {run_dir}; is this a run directory?") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise UserError(f"corrupt config.json in {run_dir}: {type(e).__name__} {e}") from None


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself (the full path, which must reproduce θ_T)."""
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return ks if ks[-1] == n else ks + [n]


def _final_row(U, S, Vt, k: int) -> np.ndarray:
    """The last row of the top-k reconstruction, diagnostics.rebuild(P, k)[-1], from P's SVD (one SVD for all k)."""
    return (U[-1, :k] * S[:k]) @ Vt[:k]


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for k, v in flat.items():
        node = tree
        *parents, leaf = k.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def _evaluator(cfgs, seeds: int, steps: int):
    """returns(flat_params) -> per-row mean greedy return, or (None, reason) when the env cannot be run here."""
    import jax

    from rlx import agents, envs, loop, runner

    cfg = cfgs[0]
    spec = envs.make(cfg.env)
    if spec.host_stepped:
        return None, f"{cfg.env} steps host emulators; rebuilt-policy returns are only evaluated on jax envs"
    agent = agents.make_train(cfg, spec)
    evaluate = jax.jit(jax.vmap(agent.evaluate))
    # The keys the runner evaluated θ_T with at the last snapshot's step: the same episodes for every k.
    keys = jax.numpy.concatenate([loop.seed_keys(c, seeds) for c in cfgs])
    ek = runner.eval_keys(keys, int(steps))

    def returns(flat):
        tree = _unflatten({k: jax.numpy.asarray(v, jax.numpy.float32) for k, v in flat.items()})
        return np.asarray(evaluate(tree, ek), dtype=np.float64).mean(axis=1)

    return returns, None


def path(run_dir: Path | str, *, seed: int = 0, ks: list[int] | None = None, out: Path | str | None = None,
         evaluate: bool = True, say: Callable = print) -> dict:
    """Analyze RUN_DIR's policy path; writes path.json and the figures to out (default RUN_DIR/analysis)
    and returns the same numbers. `seed` is the batch row whose distributions and coordinates are drawn."""
    from rlx import path_figures
    from rlx.results import atomic_write, dumps, summarize

    run_dir = Path(run_dir)
    snaps = read_snapshots(run_dir)
    cfgs, seeds, cell_ids = _read_config(run_dir)
    n, batch = snaps.n, snaps.batch
    if batch != len(cfgs) * seeds:
        raise UserError(f"{run_dir}: snapshots hold {batch} rows but config.json describes {len(cfgs)} cell(s) x "
                        f"{seeds} seed(s)")
    if not 0 <= seed < batch:
        raise UserError(f"--seed must be in 0..{batch - 1} (the batch rows of {run_dir}), got {seed}")
    ks = default_ks(n) if not ks else sorted(set(int(k) for k in ks))
    bad = [k for k in ks if not 1 <= k <= n]
    if bad:
        raise UserError(f"--k must be between 1 and the {n} snapshots, got {', '.join(map(str, bad))}")
    out = Path(out) if out is not None else run_dir / "analysis"

    returns_fn, skipped = (None, "--no-eval") if not evaluate else _evaluator(cfgs, seeds, snaps.steps[-1])
    final = {k: a[:, -1] for k, a in snaps.leaves.items()}
    rebuilt = {k: {key: np.empty_like(a, dtype=np.float64) for key, a in final.items()} for k in ks} if returns_fn else {}

    report, drawn = [], {}
    for name, leaf_keys in layers(snaps.leaves):
        sizes = [int(np.prod(snaps.leaves[k].shape[2:])) for k in leaf_keys]
        dims = {"path": {b: [] for b in BETAS}, "displacement": {b: [] for b in BETAS}}
        med, frac = [], []
        for b in range(batch):
            P = _layer_matrix(snaps, leaf_keys, b)
            U, S, Vt = diagnostics.path_svd(P)
            _, S_d, _ = diagnostics.path_svd(P - P[0])
            for beta in BETAS:
                dims["path"][beta].append(diagnostics.dims_for(S, beta))
                dims["displacement"][beta].append(diagnostics.dims_for(S_d, beta))
            detour = diagnostics.detour_ratio(P)
            med.append(float(np.median(detour)))
            frac.append(float(np.mean(detour > DETOUR_CUT)))
            if b == seed:
                drawn[name] = {"accumulated": diagnostics.accumulated_change(P), "final": diagnostics.final_change(P),
                               "detour": detour, "coords": diagnostics.coordinates(U, S), "sv": S}
            for k in ks if returns_fn else ():
                row = _final_row(U, S, Vt, k)
                for key, part in zip(leaf_keys, np.split(row, np.cumsum(sizes)[:-1]), strict=True):
                    rebuilt[k][key][b] = part.reshape(final[key].shape[1:])
        report.append({
            "layer": name,
            "params": int(sum(sizes)),
            "snapshots": n,
            "dims": {kind: {str(beta): _stats(v) for beta, v in d.items()} for kind, d in dims.items()},
            "detour_median": _stats(med),
            "detour_gt2": _stats(frac),
            "singular_values": drawn[name]["sv"],
        })

    result = {
        "run_dir": run_dir,
        "steps": snaps.steps,
        "snapshots": n,
        "batch": batch,
        "cells": len(cfgs),
        "cell_ids": cell_ids,
        "seeds": seeds,
        "seed": seed,
        "env": cfgs[0].env,
        "notes": {
            "path": "dims on the uncentered path θ_1..θ_n, as in the paper; its first direction mostly carries θ_0",
            "displacement": "dims on θ_t - θ_0, the movement alone",
            "share": "fewest directions whose singular values hold at least beta of the total (diagnostics.dims_for)",
            "detour": f"per parameter Σ|Δθ| / |θ_T - θ_0|; detour_gt2 is the fraction above {DETOUR_CUT}",
        },
        "layers": report,
        "returns": None,
    }
    if returns_fn is None:
        result["returns"] = {"skipped": skipped}
    else:
        say(f"evaluating greedy policies rebuilt from the top-k directions, k = {', '.join(map(str, ks))}")
        full = returns_fn(final)
        per_k = {k: returns_fn(rebuilt[k]) for k in ks}
        cells = []
        for c in range(len(cfgs)):
            rows = slice(c * seeds, (c + 1) * seeds)
            cells.append({"cell": cell_ids[c], "full": summarize(full[rows]),
                          "rebuilt": [{"k": k, **summarize(per_k[k][rows])} for k in ks]})
        result["returns"] = {"ks": ks, "step": int(snaps.steps[-1]), "cells": cells}

    out.mkdir(parents=True, exist_ok=True)
    row_name = f"seed {seed}" if len(cfgs) == 1 else f"cell {cell_ids[seed // seeds]} seed {seed % seeds} (row {seed})"
    figures = [
        path_figures.path_changes(drawn, out / "path_changes.png", title=f"{cfgs[0].env}: {row_name}"),
        path_figures.path_coordinates(drawn, snaps.steps, out / "path_coordinates.png",
                                      title=f"{cfgs[0].env}: {row_name}, coordinates u_i σ_i of the uncentered path's SVD"),
    ]
    if result["returns"].get("cells"):
        figures.append(path_figures.rebuilt_returns(result["returns"], out / "path_rebuilt_returns.png",
                                                    title=f"{cfgs[0].env}: θ_T rebuilt from top-k directions per layer"))
    result["figures"] = [f.name for f in figures]
    atomic_write(out / "path.json", dumps(result, indent=2) + "\n")
    result["out"] = out
    return result


def _range(s: dict, fmt: str = "{:.1f}") -> str:
    if s["mean"] is None:
        return "—"
    if s["min"] == s["max"]:
        return fmt.format(s["mean"])
    return f"{fmt.format(s['mean'])} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


LAYER_COLUMNS = ("layer", "params m", "snapshots n", "path dims@0.9", "path dims@0.99", "Δ dims@0.9",
                 "Δ dims@0.99", "median detour", f"detour > {DETOUR_CUT:g}")


def layer_rows(result: dict) -> list[tuple[str, ...]]:
    """Table rows per layer: dims (mean over batch rows, min–max), median detour ratio, fraction above the cut."""
    rows = []
    for r in result["layers"]:
        d = r["dims"]
        rows.append((r["layer"], f"{r['params']:,}", str(r["snapshots"]),
                     _range(d["path"]["0.9"]), _range(d["path"]["0.99"]),
                     _range(d["displacement"]["0.9"]), _range(d["displacement"]["0.99"]),
                     _range(r["detour_median"], "{:.2f}"), _range(r["detour_gt2"], "{:.0%}")))
    return rows


def return_rows(result: dict) -> list[tuple[str, ...]]:
    """Table rows of the rebuilt-policy returns: (cell,) k, mean, 95% CI, per seed; θ_T last."""
    ret = result["returns"]
    rows = []
    multi = len(ret["cells"]) > 1

    def fmt(label, s, cell):
        if s["mean"] is None:
            vals = ("—", "—")
        else:
            vals = (f"{s['mean']:.1f}", f"[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]")
        seeds = " ".join("—" if v is None else f"{v:.0f}" for v in s["per_seed"])
        return ((str(cell),) if multi else ()) + (label, *vals, seeds)

    for c in ret["cells"]:
        rows += [fmt(str(r["k"]), r, c["cell"]) for r in c["rebuilt"]]
        rows.append(fmt("θ_T (full)", c["full"], c["cell"]))
    return rows
