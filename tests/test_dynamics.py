"""Learning-dynamics tools in the training loop: Hadamard heads and the MinAtar CNN, representation health in
the metrics, parameter snapshots, PPTB and Langevin noise in real (tiny) DQN runs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx import envs, nets, pptb, results, runner
from rlx.cli import main
from rlx.errors import UserError
from rlx.results import RunDir

# --- networks ----------------------------------------------------------------------------------------


def _net(obs_shape, **over):
    cfg = C.apply_overrides(C.Config(), {"net.hidden": (32,), **over})
    net = nets.make_q_network(cfg.net, obs_shape, 3)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, *obs_shape)))
    return net, params


def _count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.slow
def test_hadamard_head_shapes_and_gradients(activation):
    net, params = _net((5,), **{"net.head": "hadamard", "net.activation": activation})
    p = params["params"]
    assert p["Dense_0"]["kernel"].shape == (5, 32) and p["Dense_1"]["kernel"].shape == (5, 32)
    assert p["Dense_2"]["kernel"].shape == (32, 3)
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 5))
    q, state = net.apply(params, x, mutable=["intermediates"])
    act = {"tanh": jnp.tanh, "relu": jax.nn.relu}[activation]
    a = act(x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])
    b = act(x @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"])
    np.testing.assert_allclose(state["intermediates"]["h0"][0], a * b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q, (a * b) @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"], rtol=1e-5, atol=1e-5)
    assert q.shape == (7, 3)
    if activation == "tanh":  # both factors are what saturates; they are sown for the diagnostics
        assert state["intermediates"]["tanh_h0"][0].shape == (7, 64)
    # d(sum q_0)/dW1 = x^T [(w_out,0 * b) * act'(z1)]: each branch's gradient is gated by the other branch.
    g = jax.grad(lambda ps: jnp.sum(net.apply(ps, x)[:, 0]))(params)["params"]
    z1 = x @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
    d_act = 1 - jnp.tanh(z1) ** 2 if activation == "tanh" else (z1 > 0).astype(jnp.float32)
    expect = x.T @ (p["Dense_2"]["kernel"][:, 0] * b * d_act)
    np.testing.assert_allclose(g["Dense_0"]["kernel"], expect, rtol=1e-4, atol=1e-5)
    assert float(jnp.abs(g["Dense_1"]["kernel"]).sum()) > 0


@pytest.mark.slow
def test_wide_control_matches_the_hadamard_parameter_count():
    for shape in ((5,), (10, 10, 4)):
        had = _count(_net(shape, **{"net.head": "hadamard"})[1])
        wide = _count(_net(shape, **{"net.head": "wide", "net.activation": "tanh"})[1])
        plain = _count(_net(shape)[1])
        assert abs(wide - had) / had < 0.02 and had > 1.5 * plain


def test_minatar_grid_gets_the_minatar_cnn_whose_patches_are_a_3x3_convolution():
    net, params = _net((10, 10, 4))
    assert isinstance(net, nets.MinAtarCNN) and isinstance(_net((4,))[0], nets.MLP)
    x = jax.random.normal(jax.random.PRNGKey(2), (3, 10, 10, 4))
    _, state = net.apply(params, x, mutable=["intermediates"])
    conv = params["params"]["Conv_0"]
    ref = jax.lax.conv_general_dilated(x, conv["kernel"].reshape(3, 3, 4, 16), (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC")) + conv["bias"]  # fmt: skip
    np.testing.assert_allclose(state["intermediates"]["c0"][0], jax.nn.relu(ref), rtol=1e-5, atol=1e-5)


# --- PPTB ring -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_pptb_leaves_a_path_in_the_top_k_subspace_unchanged_and_trims_one_outside_it():
    cfg = C.apply_overrides(C.Config(), {"pptb.enabled": True, "pptb.k": 2, "pptb.boost": 0.0, "pptb.window": 4, "dqn.target_every": 10,
                                         "pptb.every_updates": 4})  # fmt: skip
    _, params = _net((5,))
    rng = np.random.default_rng(0)
    direction = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
    state = pptb.init(params, 4)
    # 5 snapshots along theta_0 + t * d (rank 2 per layer): the ring keeps the last 4, in rotated order
    for t in range(5):
        current = jax.tree.map(lambda p, d, t=t: p + 0.1 * t * d, params, direction)
        state = pptb.snapshot(state, current)
    new, state2, stats = pptb.apply(state, current, cfg)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(current), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert float(stats["shift"]) < 1e-4 and float(stats["k_mean"]) == 2.0
    # a zigzag off the line is cut back (k=2 keeps the line, not the zigzag)
    zig = jax.tree.map(lambda p, d: p + 0.05 * jnp.asarray(rng.normal(size=p.shape), jnp.float32), current, direction)
    state3 = pptb.snapshot(state2, zig)
    trimmed, _, stats = pptb.apply(state3, zig, cfg)
    before = sum(float(jnp.sum((z - c) ** 2)) for z, c in zip(jax.tree.leaves(zig), jax.tree.leaves(current), strict=True))
    after = sum(float(jnp.sum((t - c) ** 2)) for t, c in zip(jax.tree.leaves(trimmed), jax.tree.leaves(current), strict=True))
    assert after < 0.9 * before and float(stats["shift"]) > 1e-3


def test_pptb_groups_leaves_by_module():
    _, params = _net((5,), **{"net.head": "hadamard"})
    assert [path for path, _ in pptb.layers(params)] == [("params", f"Dense_{i}") for i in range(3)]


# --- tiny DQN runs -----------------------------------------------------------------------------------------

TINY = {"env": "cartpole", "steps": 2000, "net.hidden": (16,), "dqn.learning_starts": 500, "dqn.buffer_size": 1000,
        "dqn.batch_size": 32, "dqn.target_every": 100, "eval.every": 1000, "eval.episodes": 2,
        "diag.batch": 64}  # fmt: skip


def _train(tmp_path, name, seeds=2, **over):
    cfg = C.apply_overrides(C.Config(), {**TINY, **over})
    run = RunDir(tmp_path / name)
    run.write_config({"config": C.to_dict(cfg), "seeds": seeds})
    return cfg, runner.train(cfg, seeds, run), run


@pytest.mark.slow
def test_diagnostics_are_in_every_chunk_and_pptb_runs_in_the_loop(tmp_path):
    # 10 updates per target period; snapshots every 20 updates, applied every 60 once learning started
    cfg, _, run = _train(tmp_path, "p", **{"pptb.enabled": True, "pptb.every_updates": 60, "pptb.window": 3, "pptb.k": 1})
    rows = run.read_metrics()
    assert len(rows) == 4
    for r in rows:
        assert 1 <= r["srank"] <= 16 and 0 < r["erank"] <= 16 and 0 <= r["dormant_0.025_h0"] <= 1
        assert r["dormant_0"] == r["dormant_0_h0"] and "saturated" not in r  # relu: nothing to saturate
    # window [t-40, t] updates must start after learning (update 0 at step 500): applications at updates
    # 60 and 120 in the second 1000 steps, none in the first
    by_chunk = {r["chunk"]: r["pptb_applied"] for r in rows if r["seed"] == 0}
    assert by_chunk == {1: 0.0, 2: 2.0}
    assert [r["pptb_k"] for r in rows if r["chunk"] == 2] == [1.0, 1.0]
    assert all(r["pptb_shift"] > 0 for r in rows if r["chunk"] == 2)
    _, _, off = _train(tmp_path, "off", seeds=1, **{"diag.enabled": False})
    assert "srank" not in off.read_metrics()[0]


@pytest.mark.slow
def test_tanh_runs_report_saturation(tmp_path):
    _, _, run = _train(tmp_path, "t", seeds=1, steps=1000, **{"net.activation": "tanh", "net.head": "hadamard"})
    r = run.read_metrics()[-1]
    assert 0 <= r["saturated"] <= 1 and r["saturated"] == r["saturated_h0"]


@pytest.mark.slow
def test_snapshots_hold_the_path_and_resume_drops_the_ones_after_the_checkpoint(tmp_path):
    cfg, _, run = _train(tmp_path, "s", **{"path.every_updates": 50})  # 500 env steps per snapshot
    files = sorted((run.path / "path").glob("*.npz"))
    assert [f.name for f in files] == ["0000000000.npz", "0000001000.npz", "0000002000.npz"]
    last = np.load(files[-1])
    assert list(last["steps"]) == [1500, 2000]
    assert last["params/Dense_0/kernel"].shape == (2, 2, 4, 16)
    # the last snapshot is the trained network
    import orbax.checkpoint as ocp

    restored = ocp.CheckpointManager(run.checkpoint_dir.absolute()).restore(2000)
    kernel = np.asarray(restored["state"]["params"]["params"]["Dense_0"]["kernel"])
    np.testing.assert_array_equal(last["params/Dense_0/kernel"][:, -1], kernel)
    # what the writer wrote, the analysis reads (5 snapshots: θ_0 and every 500 steps)
    assert main(["analyze", "path", str(run.path), "--no-eval"]) == 0
    report = json.loads((run.path / "analysis" / "path.json").read_text())
    assert report["snapshots"] == 5 and report["seeds"] == 2
    (run.path / "path" / "0000003000.npz").write_bytes(files[-1].read_bytes())  # as if written after a crash
    results.truncate_snapshots(run.path, 2000)
    assert not (run.path / "path" / "0000003000.npz").exists() and files[-1].exists()


@pytest.mark.slow
def test_pptb_state_survives_resume(tmp_path):
    over = {"pptb.enabled": True, "pptb.every_updates": 60, "pptb.window": 3}
    cfg, _, full = _train(tmp_path, "full", seeds=1, **over)
    cfg1 = C.apply_overrides(cfg, {"steps": 1000})
    half = RunDir(tmp_path / "half")
    half.write_config({"config": C.to_dict(cfg1), "seeds": 1})
    runner.train(cfg1, 1, half)
    runner.train(cfg, 1, RunDir(tmp_path / "half", resume=True), resume=True)
    a, b = full.read_metrics()[-1], RunDir(tmp_path / "half", resume=True).read_metrics()[-1]
    assert a["eval_return"] == b["eval_return"] and a["pptb_shift"] == b["pptb_shift"] and a["loss"] == b["loss"]


@pytest.mark.slow
def test_langevin_noise_trains_with_noisy_parameters_and_differs_by_seed(tmp_path):
    _, _, run = _train(tmp_path, "l", noise="langevin")
    _, _, plain = _train(tmp_path, "n", noise="none")
    rows = [r for r in run.read_metrics() if r["chunk"] == 2]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert rows[0]["loss"] != rows[1]["loss"]
    # same seeds and schedule without the noise: the parameter noise is what changed the run
    assert [r["loss"] for r in rows] != [r["loss"] for r in plain.read_metrics() if r["chunk"] == 2]


@pytest.mark.slow
def test_random_probe_states_repeat_for_a_key():
    spec = envs.make("breakout")
    a = envs.random_states(spec, jax.random.PRNGKey(0), 40)
    assert a.shape == (40, 10, 10, 4)
    np.testing.assert_array_equal(a, envs.random_states(spec, jax.random.PRNGKey(0), 40))
    assert not np.array_equal(a, envs.random_states(spec, jax.random.PRNGKey(1), 40))


# --- settings that cannot run --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"net.head": "hadmard"}, "unknown net.head"),
        ({"net.activation": "gelu"}, "unknown net.activation"),
        ({"path.every_updates": 15}, "path.every_updates (15) must be a multiple of the updates per target period"),
        ({"pptb.enabled": True, "pptb.every_updates": 45, "pptb.window": 3}, "must be a multiple of dqn.target_every"),
        ({"pptb.every_updates": 25, "pptb.window": 10}, "positive multiple of pptb.window"),
        ({"agent": "pqn", "pptb.enabled": True}, "pptb is a DQN option"),
        ({"langevin.beta": 0}, "langevin.beta must be positive"),
        ({"diag.batch": 0}, "diag.batch must be positive"),
    ],
)
def test_impossible_settings_are_refused(over, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        C.apply_overrides(C.Config(), {**TINY, **over})


@pytest.mark.slow
def test_train_cli_accepts_langevin(tmp_path, capsys):
    rc = main(["train", "cartpole", "--noise", "langevin", "--seeds", "1", "--steps", "1000", "--out", str(tmp_path),
               "--name", "l", *[a for k, v in TINY.items() if k not in ("env", "steps")
                                for a in ("--set", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}")]])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "l" / "config.json").read_text())["config"]["noise"] == "langevin"
