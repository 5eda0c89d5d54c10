"""Any --steps works for every agent x env family x noise: steps round up, and eval.every to the nearest, whole
number of the agent's blocks (rlx.agents.fit_to_blocks), and the agent then builds and traces its chunk."""

import jax
import jax.numpy as jnp
import pytest

from rlx import agents, envs
from rlx import config as C
from rlx.cli import main
from rlx.errors import UserError

ENVS = ["cartpole", "breakout", "chain-10", "pong"]  # gymnax classic, MinAtar, the N-chain, Atari (ALE)
ODD = {"steps": 1237, "eval.every": 333}  # a multiple of no block size
SMALL = {"dqn.num_envs": 2, "dqn.train_every": 2, "dqn.target_every": 60, "dqn.buffer_size": 64,
         "dqn.batch_size": 4, "pqn.num_envs": 2, "pqn.rollout": 8, "eval.episodes": 1}  # fmt: skip


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("agent", list(agents.AGENTS))
@pytest.mark.parametrize("noise", ["none", "eps", "param", "noisy", "langevin"])
@pytest.mark.slow
def test_odd_steps_fit_every_agent_env_and_noise(env, agent, noise):
    if env == "pong":
        pytest.importorskip("ale_py")
    cfg = C.apply_overrides(C.Config(), {"env": env, "agent": agent, "noise": noise, **SMALL, **ODD})
    block = agents.block_steps(cfg)
    assert cfg.steps % block == 0 and ODD["steps"] <= cfg.steps < ODD["steps"] + block
    assert cfg.eval.every % block == 0 and abs(cfg.eval.every - ODD["eval.every"]) <= max(block, ODD["eval.every"])
    # The agent accepts the fitted layout: its first chunk traces (shapes only; nothing is compiled or run).
    agent_fns = agents.make_train(cfg, envs.make(env))
    key, hp = jax.random.key(0), agents.core.hparams(cfg)
    state = jax.eval_shape(agent_fns.init, key, hp)
    jax.eval_shape(lambda s: agent_fns.chunk(s, hp, jnp.int32(0), cfg.eval.every // block), state)


def test_fitting_is_idempotent_and_keeps_valid_layouts():
    cfg = C.apply_overrides(C.Config(), {"agent": "pqn", "steps": 1000, "eval.every": 700})
    assert (cfg.steps, cfg.eval.every) == (1024, 512)  # blocks of 16 x 32 = 512
    assert C.apply_overrides(cfg, {}) == cfg
    assert C.apply_overrides(C.Config(), {"steps": 20_000}).steps == 20_000  # already whole DQN blocks


def test_dqn_with_path_snapshots_fits_to_whole_snapshot_periods():
    cfg = C.apply_overrides(C.Config(), {"path.every_updates": 50, "steps": 1000, "eval.every": 700})
    assert (cfg.steps, cfg.eval.every) == (1000, 500)  # 50 updates x 10 env steps = one target period of 500
    cfg = C.apply_overrides(C.Config(), {"dqn.target_every": 100, "path.every_updates": 30, "steps": 1000,
                                         "eval.every": 700})  # fmt: skip
    assert (cfg.steps, cfg.eval.every) == (1200, 600)  # snapshots every 300 env steps, target every 100


def test_truly_contradictory_settings_still_fail():
    with pytest.raises(UserError, match="pqn.minibatches"):
        C.apply_overrides(C.Config(), {"agent": "pqn", "pqn.num_envs": 2, "pqn.rollout": 2, "pqn.minibatches": 8})
    with pytest.raises(UserError, match="steps must be positive"):
        C.apply_overrides(C.Config(), {"steps": 0})


@pytest.mark.slow
def test_cli_says_when_it_rounds(tmp_path, capsys):
    args = ["train", "cartpole", "--agent", "pqn", "--seeds", "1", "--steps", "1000", "--set", "eval.every=700",
            "--set", "diag.enabled=false", "--set", "eval.episodes=1", "--out", str(tmp_path), "--name", "r"]  # fmt: skip
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "steps 1,000 → 1,024: pqn runs whole blocks of 512 env steps" in out
    assert "eval.every 700 → 512" in out
