"""`rlx analyze path`: policy-path analysis of synthetic snapshot files with real CartPole param shapes."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cli_runs import rlx

from rlx import analyze, diagnostics, envs, nets
from rlx import config as C

# Every option of `rlx analyze path --help` and the test below that exercises it.
ANALYZE_OPTIONS = {
    "--seed": "test_analyze_path_with_rebuilt_policy_returns",
    "--k": "test_analyze_path_with_rebuilt_policy_returns",
    "--out": "test_analyze_path_with_rebuilt_policy_returns",
    "--no-eval": "test_no_eval_writes_numbers_and_figures_to_run_dir_analysis",
    "--help": "test_every_analyze_option_is_exercised",
}

SEEDS = 2
N = 13  # θ_0 plus 3 chunk files of 4 snapshots
STEP = 100



def _flat(params) -> dict:
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v) for path, v in leaves}


def controller(spec_obs, hidden=16) -> dict:
    """θ_T: a Q-network whose greedy action follows the pole's angular velocity (returns of ~150-200, not 500,
    so equal returns say something)."""
    k0, k1 = np.zeros((spec_obs, hidden)), np.zeros((hidden, 2))
    k0[3, 0], k0[3, 1] = 1.0, -1.0  # h0 = relu(θ'), h1 = relu(-θ')
    k1[1, 0], k1[0, 1] = 1.0, 1.0  # Q(left) = h1, Q(right) = h0
    return {"params/Dense_0/kernel": k0, "params/Dense_0/bias": np.zeros(hidden),
            "params/Dense_1/kernel": k1, "params/Dense_1/bias": np.zeros(2)}


def make_run(root, *, n=N, seeds=SEEDS):
    """A run directory whose every layer goes from its init θ_0 to the controller θ_T along 2 known directions
    per seed (a straight line and a sine detour off it) plus a small zigzag."""
    cfg = C.apply_overrides(C.Config(), {"env": "cartpole", "net.hidden": (16,), "noise": "none", "eval.episodes": 2})
    spec = envs.make(cfg.env)
    net = nets.make_q_network(cfg.net, spec.obs_shape, spec.num_actions)
    target = controller(spec.obs_shape[0])
    rng = np.random.default_rng(0)
    t = np.arange(n) / (n - 1)
    zigzag = 1e-3 * (-1.0) ** np.arange(n)
    per_seed = []
    for s in range(seeds):
        flat = _flat(net.init(jax.random.PRNGKey(s), jnp.zeros((1, *spec.obs_shape))))
        assert set(flat) == set(target)
        path = {}
        for layer in sorted({k.rsplit("/", 1)[0] for k in flat}):
            keys = sorted(k for k in flat if k.startswith(layer + "/"))
            theta0 = np.concatenate([flat[k].ravel() for k in keys])
            d = np.concatenate([target[k].ravel() for k in keys]) - theta0
            m = theta0.size
            side = rng.normal(size=m)
            side -= side @ d / (d @ d) * d
            side *= 0.6 * np.linalg.norm(d) / np.linalg.norm(side)
            P = theta0 + np.outer(t, d) + np.outer(np.sin(2 * np.pi * t), side) + np.outer(zigzag, rng.uniform(-1, 1, m))
            for k, part in zip(keys, np.split(P, np.cumsum([flat[k].size for k in keys])[:-1], axis=1), strict=True):
                path[k] = part.reshape((n, *flat[k].shape)).astype(np.float32)
        per_seed.append(path)
    leaves = {k: np.stack([p[k] for p in per_seed]) for k in per_seed[0]}  # (seeds, n, *shape)
    (root / "path").mkdir(parents=True)
    steps = np.arange(n, dtype=np.int64) * STEP
    chunks = [slice(0, 1)] + [slice(i, min(i + 4, n)) for i in range(1, n, 4)]
    for c in chunks:
        np.savez(root / "path" / f"{steps[c][-1]:010d}.npz", steps=steps[c], **{k: v[:, c] for k, v in leaves.items()})
    (root / "config.json").write_text(json.dumps({"config": C.to_dict(cfg), "seeds": seeds}))
    return root, leaves, cfg


def layer_path(leaves, layer, seed):
    keys = sorted(k for k in leaves if k.startswith(layer + "/"))
    return np.concatenate([leaves[k][seed].reshape(N, -1) for k in keys], axis=1).astype(np.float64)


def test_every_analyze_option_is_exercised(capsys):
    rc, out, _ = rlx(capsys, "analyze", "path", "--help")
    assert rc == 0
    assert set(re.findall(r"(--[a-z][a-z-]*)", out)) == set(ANALYZE_OPTIONS)
    names = {n for n in globals() if n.startswith("test_")}
    assert set(ANALYZE_OPTIONS.values()) <= names


@pytest.mark.slow
def test_analyze_path_with_rebuilt_policy_returns(tmp_path, capsys):
    run, leaves, _ = make_run(tmp_path / "run")
    out_dir = tmp_path / "figs"
    rc, out, err = rlx(capsys, "analyze", "path", run, "--seed", 1, "--k", "1,3", "--k", N, "--out", out_dir)
    assert rc == 0, err
    r = json.loads((out_dir / "path.json").read_text())
    assert not (run / "analysis").exists()
    assert r["seed"] == 1 and r["snapshots"] == N and r["steps"] == [i * STEP for i in range(N)]
    assert [x["layer"] for x in r["layers"]] == ["params/Dense_0", "params/Dense_1"]
    for layer in r["layers"]:
        d = layer["dims"]["displacement"]["0.9"]
        assert (d["min"], d["max"]) == (2, 2), layer["layer"]
        assert layer["params"] == layer_path(leaves, layer["layer"], 0).shape[1]
        # the drawn singular values are those of the selected batch row (seed 1), not seed 0
        for seed, same in ((1, True), (0, False)):
            sv = np.linalg.svd(layer_path(leaves, layer["layer"], seed), compute_uv=False)
            assert np.allclose(layer["singular_values"], sv, rtol=1e-6) == same
        assert 1.0 < layer["detour_median"]["mean"] and 0.0 <= layer["detour_gt2"]["mean"] <= 1.0
    ret = r["returns"]
    assert ret["ks"] == [1, 3, N] and ret["step"] == (N - 1) * STEP
    (cell,) = ret["cells"]
    by_k = {x["k"]: x for x in cell["rebuilt"]}
    # all N directions rebuild θ_T: the same greedy episodes (same keys) give exactly the same returns
    assert by_k[N]["per_seed"] == cell["full"]["per_seed"] and len(cell["full"]["per_seed"]) == SEEDS
    assert cell["full"]["mean"] > 100  # the controller at the path's end, not a random init (~10)
    for f in ("path_changes.png", "path_coordinates.png", "path_rebuilt_returns.png"):
        assert (out_dir / f).stat().st_size > 5000, f
    assert "Dense_0" in out and "θ_T (full)" in out and "Δ dims@0.9" in out


@pytest.mark.slow
def test_no_eval_writes_numbers_and_figures_to_run_dir_analysis(tmp_path, capsys):
    run, _, _ = make_run(tmp_path / "run")
    rc, out, err = rlx(capsys, "analyze", "path", run, "--no-eval")
    assert rc == 0, err
    r = json.loads((run / "analysis" / "path.json").read_text())
    assert r["returns"] == {"skipped": "--no-eval"} and r["seed"] == 0
    assert sorted(p.name for p in (run / "analysis").iterdir()) == ["path.json", "path_changes.png", "path_coordinates.png"]
    assert "skipped" in out


@pytest.mark.slow
def test_sweep_group_rows_are_cells_by_seeds(tmp_path, capsys):
    run, _, cfg = make_run(tmp_path / "g1", seeds=2)
    lr = C.apply_overrides(cfg, {"optim.lr": 1e-3})
    (run / "config.json").write_text(json.dumps({"configs": [C.to_dict(cfg), C.to_dict(lr)], "seeds": 1, "cells": [3, 4]}))
    rc, _, err = rlx(capsys, "analyze", "path", run, "--no-eval", "--seed", 1)
    assert rc == 0, err
    r = json.loads((run / "analysis" / "path.json").read_text())
    assert (r["cells"], r["seeds"], r["cell_ids"], r["batch"]) == (2, 1, [3, 4], 2)
    (run / "config.json").write_text(json.dumps({"configs": [C.to_dict(cfg), C.to_dict(lr)], "seeds": 2}))
    rc, _, err = rlx(capsys, "analyze", "path", run, "--no-eval")
    assert rc == 2 and "2 cell(s) x 2 seed(s)" in err and err.count("\n") == 1


@pytest.mark.slow
def test_host_emulator_envs_skip_the_rebuilt_policy_returns(tmp_path, capsys, monkeypatch):
    import dataclasses

    run, _, _ = make_run(tmp_path / "run")
    real = envs.make
    monkeypatch.setattr(envs, "make", lambda name: dataclasses.replace(real(name), host_stepped=True))
    rc, out, err = rlx(capsys, "analyze", "path", run)
    assert rc == 0, err
    r = json.loads((run / "analysis" / "path.json").read_text())
    assert "host emulators" in r["returns"]["skipped"] and "host emulators" in out
    assert not (run / "analysis" / "path_rebuilt_returns.png").exists()


def test_default_ks_end_at_n():
    assert analyze.default_ks(13) == [1, 2, 4, 8, 13]
    assert analyze.default_ks(16) == [1, 2, 4, 8, 16]
    assert analyze.default_ks(3) == [1, 2, 3]


def test_final_row_of_top_k_matches_diagnostics_rebuild():
    P = np.random.default_rng(1).normal(size=(7, 30))
    U, S, Vt = diagnostics.path_svd(P)
    for k in (1, 3, 7):
        np.testing.assert_allclose(analyze._final_row(U, S, Vt, k), diagnostics.rebuild(P, k)[-1], atol=1e-12)


def test_layers_come_in_network_order():
    keys = [f"params/{m}/{leaf}" for m in ("Conv_0", "Dense_0", "Dense_1", "Dense_10", "Dense_2") for leaf in ("kernel", "bias")]
    order = analyze.layers(keys)
    assert [name for name, _ in order] == ["params/Conv_0", "params/Dense_0", "params/Dense_1", "params/Dense_2",
                                           "params/Dense_10"]  # fmt: skip
    assert order[0][1] == ["params/Conv_0/bias", "params/Conv_0/kernel"]


def _missing_dir(tmp_path):
    return tmp_path / "nope"


def _no_path(tmp_path):
    (tmp_path / "r").mkdir()
    return tmp_path / "r"


def _too_few(tmp_path):
    run, _, _ = make_run(tmp_path / "r", n=2)
    return run


def _corrupt(tmp_path):
    run, _, _ = make_run(tmp_path / "r")
    f = run / "path" / f"{8 * STEP:010d}.npz"
    f.write_bytes(f.read_bytes()[:300])
    return run


@pytest.mark.parametrize(
    "make,args,fragment",
    [
        (_missing_dir, [], "no run directory"),
        (_no_path, [], "--set path.every_updates=M"),
        (_too_few, [], "needs at least 3"),
        (_corrupt, [], f"{8 * STEP:010d}.npz: corrupt or truncated"),
        (lambda p: make_run(p / "r")[0], ["--seed", "2", "--no-eval"], "--seed must be in 0..1"),
        (lambda p: make_run(p / "r")[0], ["--k", "0,2", "--no-eval"], "--k must be between 1 and the 13"),
        (lambda p: make_run(p / "r")[0], ["--k", "two", "--no-eval"], "--k expects integers"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, make, args, fragment):
    rc, _, err = rlx(capsys, "analyze", "path", make(tmp_path), *args)
    assert rc == 2
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
