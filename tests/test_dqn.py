"""DQN mechanics: truncation vs termination, the TD target, and the compiled loop's bookkeeping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx import envs, runner
from rlx.agents import dqn
from rlx.agents.core import hparams
from rlx.nets import MLP


def test_td_target_bootstraps_only_when_not_terminal():
    y = dqn.td_target(jnp.array([1.0, 1.0]), jnp.array([True, False]), jnp.array([5.0, 5.0]), 0.9)
    np.testing.assert_allclose(np.asarray(y), [1.0, 5.5])


def _chain_agent(**over):
    cfg = C.apply_overrides(
        C.Config(),
        {
            "env": "chain-3",
            "steps": 24,
            "dqn.num_envs": 1,
            "dqn.train_every": 1,
            "dqn.target_every": 12,
            "dqn.learning_starts": 10_000,  # collect only
            "dqn.buffer_size": 24,
            "dqn.batch_size": 4,
            "eval.every": 24,
            **over,
        },
    )
    spec = envs.make(cfg.env)
    agent = dqn.make_train(cfg, spec)
    hp = hparams(cfg)
    state = agent.init(jax.random.PRNGKey(0), hp)
    state, _, _ = jax.jit(agent.chunk, static_argnums=3)(state, hp, jnp.int32(0), 2)
    return state


@pytest.mark.slow
def test_time_limit_transition_is_stored_for_bootstrapping():
    # chain-3 episodes last 12 steps and end only by the time limit: 24 steps hold two episode ends.
    data = jax.tree.map(np.asarray, _chain_agent().buffer.data)
    assert not data["terminated"].any()
    for end in (11, 23):
        # at the time limit the stored next_obs follows the dynamics from obs and action (pre-reset state)
        state, action = int(data["obs"][end].sum()), int(data["action"][end])
        expected = min(state + 1, 3) if action == 1 else max(state - 1, 1)
        assert int(data["next_obs"][end].sum()) == expected
    # consecutive rows chain next_obs -> obs inside an episode; after the limit obs is the reset state s2
    np.testing.assert_array_equal(data["next_obs"][:11], data["obs"][1:12])
    np.testing.assert_array_equal(data["obs"][12], [1.0, 1.0, 0.0])


def test_truncated_batch_bootstraps_terminal_batch_does_not():
    net = MLP((8,), 2)
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 3)))
    obs = jnp.array([[1.0, 1.0, 0.0]])
    nxt = jnp.array([[1.0, 1.0, 1.0]])
    v_next = float(jnp.max(net.apply(params, nxt)))
    a_next = int(jnp.argmax(net.apply(params, nxt)))
    q_sa = float(net.apply(params, obs)[0, 0])
    for terminated, expect_y in ((False, 1.0 + 0.5 * v_next), (True, 1.0)):
        batch = dict(obs=obs, next_obs=nxt, action=jnp.array([0]), reward=jnp.array([1.0]), terminated=jnp.array([terminated]))
        for double in (True, False):
            loss, _ = dqn.q_loss(params, params, batch, 0.5, lambda p, o, k=None: net.apply(p, o), double, "mse")
            np.testing.assert_allclose(float(loss), 0.5 * (q_sa - expect_y) ** 2, rtol=1e-5)
    assert a_next in (0, 1)


def test_cartpole_terminal_is_not_truncated():
    spec = envs.make("cartpole")
    key = jax.random.PRNGKey(0)
    obs, state = spec.reset(key)
    ends = []
    for t in range(200):  # always push left: the pole falls within a few dozen steps
        out = spec.step(jax.random.fold_in(key, t), state, 0)
        state = out.state
        if bool(out.terminated) or bool(out.truncated):
            ends.append((bool(out.terminated), bool(out.truncated)))
            break
    assert ends == [(True, False)]


def _small_cfg(**over):
    base = {
        "steps": 6000,
        "dqn.learning_starts": 1000,
        "dqn.buffer_size": 2000,
        "dqn.batch_size": 32,
        "dqn.target_every": 500,
        "eval.every": 2000,
        "eval.episodes": 3,
        "explore.eps_decay_steps": 3000,
    }
    return C.apply_overrides(C.Config(), {**base, **over})


@pytest.mark.slow
def test_seeds_differ_and_vmapped_programs_learn_something():
    cfg = _small_cfg()
    prog = runner.build([cfg], 3, devices=None)
    state = prog.init(prog.keys, prog.hp)
    state, m, _ = prog.chunk_for(state, 4)(state, prog.hp, jnp.int32(0))
    p = np.asarray(state.params["params"]["Dense_0"]["kernel"])
    assert not np.allclose(p[0], p[1]) and not np.allclose(p[1], p[2])
    # blocks start at 0, 500, 1000, 1500 steps; learning from 1000: 2 blocks x 50 updates (10 envs, every 10 steps)
    assert np.all(np.asarray(m["updates"]) == 100.0)
    assert np.all(np.isfinite(np.asarray(m["loss"])))


def test_cpu_cores_are_exposed_as_devices():
    import os

    # conftest imports rlx first, as the CLI does, so every core is an XLA device for seed sharding.
    if jax.default_backend() == "cpu" and (os.cpu_count() or 1) > 1 and os.environ.get("RLX_CPU_DEVICES") != "1":
        assert len(jax.devices()) == os.cpu_count()
