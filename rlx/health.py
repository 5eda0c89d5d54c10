"""Per-seed health: a seed whose training went non-finite, or whose Q-values left what its env's returns allow, is
flagged, shown and left out of the statistics, never averaged in silently.

After every chunk the runner (rlx.runner.chunk_runner) checks each seed of each cell:

- "nonfinite": its parameters hold NaN or inf, or, in a chunk with gradient updates, the chunk's loss or mean
  Q(s, a) does (an inf loss usually means a huge but finite Q: its square overflowed float32);
- "diverged": in a chunk with updates, |mean Q(s, a)| of the chunk exceeds `q_bound` = Q_MARGIN x r_max x
  |td.reward_scale| / (1 - td.gamma), r_max the largest |reward| of one step (EnvSpec.reward_bound). No
  discounted return can exceed r_max / (1 - td.gamma) in size; the margin leaves room for the overestimation of a
  Q that is still learning (healthy CartPole runs stay below 1.5x). An env without a known r_max (a gymnax id
  outside rlx's table), or td.gamma = 1, gets the finiteness check alone and q_bound None.

A flag stays once set, and "nonfinite" outranks "diverged": a seed that came back from 1e28 has not learned what
a healthy one has. The flags travel in every row of metrics.jsonl ("health"), in the checkpoint's meta (a resumed
run keeps them) and in summary.json ("health", `block`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

OK, DIVERGED, NONFINITE = "ok", "diverged", "nonfinite"
SEVERITY = {OK: 0, DIVERGED: 1, NONFINITE: 2}
Q_MARGIN = 10.0


def q_bound(cfg, spec) -> float | None:
    """The largest |mean Q(s, a)| a healthy seed of cfg reaches on env `spec`; None when rlx knows no bound."""
    if spec.reward_bound is None or cfg.td.gamma >= 1.0:
        return None
    bound = Q_MARGIN * spec.reward_bound * abs(cfg.td.reward_scale) / (1.0 - cfg.td.gamma)
    return float(f"{bound:.6g}")  # 1000, not the 999.9999999999991 that 1 - 0.99 gives


def bound_rule(cfg, spec) -> str:
    """How q_bound was reached, for messages and summary.json: `10 x max |reward| 1 / (1 - td.gamma 0.99)`."""
    if spec.reward_bound is None:
        return f"none: rlx knows no largest reward of {cfg.env}, so only non-finite values are checked"
    if cfg.td.gamma >= 1.0:
        return "none: td.gamma is 1, so returns are not bounded; only non-finite values are checked"
    scale = f" x |td.reward_scale| {abs(cfg.td.reward_scale):g}" if cfg.td.reward_scale != 1.0 else ""
    return f"{Q_MARGIN:g} x max |reward| {spec.reward_bound:g}{scale} / (1 - td.gamma {cfg.td.gamma:g})"


def params_finite(params):
    """(batch,) bool, on the params' devices: whether every parameter of each seed is finite."""
    return _finite_program()(params)


@functools.cache
def _finite_program():
    # Built once per process; jax compiles it once per shape and sharding from there on.
    import jax
    import jax.numpy as jnp

    def one(p):
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(p)]))

    return jax.jit(jax.vmap(one))


def check(loss: float, q_mean: float, updates: float, params_ok: bool, bound: float | None) -> str:
    """One seed's health in one chunk, from its metrics (NaN loss and Q mean nothing in a chunk without updates)."""
    learned = updates > 0
    if not params_ok or (learned and not (math.isfinite(loss) and math.isfinite(q_mean))):
        return NONFINITE
    if learned and bound is not None and abs(q_mean) > bound:
        return DIVERGED
    return OK


@dataclass
class Tracker:
    """The health of every seed of a program (cells x seeds, cell-major), chunk after chunk."""

    bounds: list  # q_bound per batch index
    rules: list  # bound_rule per cell
    seeds: int
    status: list  # per batch index: OK, DIVERGED or NONFINITE
    q_peak: list  # per batch index: the largest finite |mean Q(s, a)| of any chunk so far

    @classmethod
    def start(cls, cfgs: list, seeds: int, spec, meta: dict) -> Tracker:
        """A tracker for cfgs x seeds, carrying on from a checkpoint's meta (all healthy without one)."""
        n = len(cfgs) * seeds
        saved = meta.get("health") or {}
        status, peak = list(saved.get("status", [OK] * n)), list(saved.get("q_peak", [0.0] * n))
        bounds = [q_bound(c, spec) for c in cfgs for _ in range(seeds)]
        return cls(bounds, [bound_rule(c, spec) for c in cfgs], seeds, status, peak)

    def update(self, metrics: dict, params_ok) -> None:
        """Fold in one chunk: its gathered metrics (loss, q_mean, updates per batch index) and params_finite."""
        for b, bound in enumerate(self.bounds):
            q = float(metrics["q_mean"][b])
            now = check(float(metrics["loss"][b]), q, float(metrics["updates"][b]), bool(params_ok[b]), bound)
            self.status[b] = max(self.status[b], now, key=SEVERITY.__getitem__)
            if math.isfinite(q):
                self.q_peak[b] = max(self.q_peak[b], abs(q))

    def meta(self) -> dict:
        """What the checkpoint keeps, so that a resumed run starts from these flags."""
        return {"health": {"status": list(self.status), "q_peak": list(self.q_peak)}}

    def cell(self, i: int) -> dict:
        """summary.json's `health` of cell i."""
        mine = slice(i * self.seeds, (i + 1) * self.seeds)
        return block(self.status[mine], self.bounds[i * self.seeds], self.rules[i], self.q_peak[mine])


def block(status: list, bound: float | None, rule: str | None = None, q_peak: list | None = None) -> dict:
    """summary.json's `health`: per_seed flags, the seed ids that diverged and that went non-finite, q_bound with
    the rule it came from, and each seed's largest |mean Q(s, a)|."""
    return {
        "per_seed": list(status),
        "diverged": [i for i, s in enumerate(status) if s == DIVERGED],
        "nonfinite": [i for i, s in enumerate(status) if s == NONFINITE],
        "q_bound": bound,
        "q_bound_rule": rule,
        "q_peak": q_peak,
    }


def healthy(health: dict | None, seeds: int) -> list[bool]:
    """Per seed, whether it counts in the statistics (every seed of a summary written before health existed)."""
    return [s == OK for s in health["per_seed"]] if health else [True] * seeds


def excluded(health: dict | None) -> int:
    """How many seeds the statistics leave out."""
    return len(health["diverged"]) + len(health["nonfinite"]) if health else 0


def note(health: dict | None) -> str:
    """What goes beside a statistic over the healthy seeds: ` (1 excluded)`, ` (all 2 excluded)`, or nothing."""
    k = excluded(health)
    if not k:
        return ""
    return f" (all {k} excluded)" if k == len(health["per_seed"]) else f" ({k} excluded)"


def status_text(health: dict | None) -> str:
    """The table's health cell: `ok`, or `diverged: 0 1; non-finite: 2`."""
    parts = [f"{what}: {' '.join(map(str, health[key]))}" for key, what in (("diverged", "diverged"),
             ("nonfinite", "non-finite")) if health and health[key]]  # fmt: skip
    return "; ".join(parts) or "ok"


def warning(health: dict | None, where: str = "") -> str | None:
    """One line naming the failed seeds, the bound and what the statistics are over; None when all are healthy.
    `where` names the run or cell."""
    k = excluded(health)
    if not k:
        return None
    parts = []
    if health["diverged"]:
        peak = max(health["q_peak"][i] for i in health["diverged"]) if health.get("q_peak") else float("nan")
        parts.append(f"{_seeds(health['diverged'])} diverged (|mean Q| {peak:.3g} > bound {health['q_bound']:.4g} "
                     f"= {health['q_bound_rule']})")
    if health["nonfinite"]:
        parts.append(f"{_seeds(health['nonfinite'])} went non-finite (NaN or inf in the loss, Q or parameters)")
    n = len(health["per_seed"])
    rest = "no statistic is shown: every seed failed" if k == n else f"statistics are over the other {n - k} of {n}"
    return f"rlx: warning: {where}{'; '.join(parts)}; {rest}."


def _seeds(ids: list) -> str:
    return f"seed{'s' if len(ids) > 1 else ''} {' '.join(map(str, ids))}"
