"""Atari Pong on the real ROM (ale-py): preprocessing, seeds sharing one vector env, DQN and PQN end to end."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("ale_py")

from rlx import envs  # noqa: E402
from rlx.cli import main  # noqa: E402
from rlx.envs import atari  # noqa: E402
from rlx.errors import UserError  # noqa: E402

# Tiny budgets: the Nature CNN costs about 0.3 s per update on this CPU inside the compiled loop.
TINY_DQN = [
    "--set", "dqn.num_envs=4", "--set", "dqn.buffer_size=500", "--set", "dqn.batch_size=8",
    "--set", "dqn.learning_starts=1200", "--set", "dqn.train_every=8", "--set", "dqn.target_every=400",
    "--set", "eval.every=800", "--set", "eval.episodes=1", "--steps", "1600",
]  # fmt: skip


def test_preprocessing_gives_uint8_frame_stacks_and_seeded_noop_starts():
    keys = jax.random.split(jax.random.PRNGKey(0), 6)
    obs, state, frames = jax.jit(lambda k: atari.reset(k, role="test-reset"))(keys)
    assert obs.shape == (6, 4, 84, 84) and obs.dtype == jnp.uint8
    assert not bool(state.needs_reset.any())
    # up to 30 no-ops (x4 frames) at reset, drawn from each env's seed: different seeds start differently
    assert len(set(np.asarray(frames).tolist())) > 1
    # the same keys give the same starts
    _, _, again = jax.jit(lambda k: atari.reset(k, role="test-reset"))(keys)
    assert np.array_equal(np.asarray(frames), np.asarray(again))
    spec = envs.make("pong")
    assert spec.obs_shape == (4, 84, 84) and spec.num_actions == 6 and spec.clip_reward and spec.host_stepped


def test_seeds_vmapped_over_one_shared_vector_env():
    # Under vmap over 3 seeds of 2 envs, one reset and one step call serve all 6 emulators.
    def one_seed(key):
        obs, state, _ = atari.reset(jax.random.split(key, 2), role="test-vmap")
        obs, state, reward, term, trunc, reset_step = atari.step(state, jnp.zeros(2, jnp.int32), role="test-vmap")
        return obs, reward, reset_step

    obs, reward, reset_step = jax.jit(jax.vmap(one_seed))(jax.random.split(jax.random.PRNGKey(1), 3))
    assert obs.shape == (3, 2, 4, 84, 84) and reward.shape == (3, 2) and not bool(reset_step.any())
    assert ("test-vmap", 6) in atari._POOLS


def test_missing_ale_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)
    with pytest.raises(UserError, match=r"pip install 'rlx\[atari\]'"):
        envs.make("pong")


def _rows(path):
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_dqn_param_noise_on_pong_trains_checkpoints_and_resumes(tmp_path, capsys, monkeypatch):
    from rlx import runner

    real_train = runner.train

    def interrupted(*args, on_chunk=None, **kw):
        def hook(steps, rows):
            on_chunk(steps, rows)
            if steps == 800:
                raise KeyboardInterrupt

        return real_train(*args, on_chunk=hook, **kw)

    monkeypatch.setattr(runner, "train", interrupted)
    args = ["train", "pong", "--noise", "param", "--seeds", "2", *TINY_DQN, "--out", str(tmp_path), "--name", "p"]
    assert main(args) == 130
    assert [r["steps"] for r in _rows(tmp_path / "p")] == [800, 800]
    assert any(p.name == "800" for p in (tmp_path / "p" / "checkpoints").iterdir())
    monkeypatch.setattr(runner, "train", real_train)
    # resumed: the emulators restart their episodes; the networks, replay and σ come from the checkpoint
    assert main(["train", "pong", "--resume", "--out", str(tmp_path), "--name", "p"]) == 0, capsys.readouterr().err
    rows = _rows(tmp_path / "p")
    assert [r["steps"] for r in rows] == [800, 800, 1600, 1600]
    last = rows[-1]
    assert last["updates"] > 0 and np.isfinite(last["loss"]) and np.isfinite(last["sigma"])
    assert -21 <= last["eval_return"] <= 21  # the unclipped game score
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["env"] == "pong" and len(summary["eval_return"]["per_seed"]) == 2


@pytest.mark.parametrize("noise", ["eps", "param", "noisy"])
@pytest.mark.slow
def test_pqn_on_pong_runs_with_every_noise(tmp_path, capsys, noise):
    args = [
        "train", "pong", "--agent", "pqn", "--noise", noise, "--seeds", "2", "--steps", "100",
        "--set", "pqn.num_envs=4", "--set", "pqn.rollout=16", "--set", "pqn.minibatches=2", "--set", "pqn.epochs=1",
        "--set", "eval.every=64", "--set", "eval.episodes=1", "--set", "optim.name=radam",
        "--out", str(tmp_path), "--name", noise,
    ]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    rows = _rows(tmp_path / noise)
    assert "steps 100 → 128" in capsys.readouterr().out  # rounded up to whole rollouts of 4 x 16, and said so
    assert [r["steps"] for r in rows] == [64, 64, 128, 128]
    assert all(r["updates"] == 2 and np.isfinite(r["loss"]) for r in rows)
