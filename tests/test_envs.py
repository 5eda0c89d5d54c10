"""rlx.envs: names, shapes, errors, and the terminated/truncated/next_obs contract over gymnax."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.errors import UserError

# Written down from the gymnax sources rather than read back from make(), so a wrong mapping fails.
EXPECTED = {
    "cartpole": ("CartPole-v1", (4,), 2, 500),
    "acrobot": ("Acrobot-v1", (6,), 3, 500),
    "mountaincar": ("MountainCar-v0", (2,), 3, 200),
    "breakout": ("Breakout-MinAtar", (10, 10, 4), 3, 1000),
    "asterix": ("Asterix-MinAtar", (10, 10, 4), 5, 1000),
    "freeway": ("Freeway-MinAtar", (10, 10, 7), 3, 2500),
    "spaceinvaders": ("SpaceInvaders-MinAtar", (10, 10, 6), 4, 1000),
    "seaquest": ("Seaquest-MinAtar", (10, 10, 10), 6, 1000),
    "deepsea": ("DeepSea-bsuite", (8, 8), 2, 8),
    "catch": ("Catch-bsuite", (10, 5), 3, 1000),
}


# XLA takes ~8 s each to compile these on a 2-core CPU; they share the adapter path with breakout
# and spaceinvaders, which do run, so for them tracing jit+vmap (shapes, dtypes) is checked only.
TRACE_ONLY = {"asterix", "freeway", "seaquest"}


def batch_step(spec, batch=3, run=True):
    """Reset and step `batch` envs under jit+vmap with distinct keys and actions."""
    call = (lambda f, *a: f(*a)) if run else jax.eval_shape
    keys = jax.random.split(jax.random.key(0), batch)
    obs, states = call(jax.jit(jax.vmap(lambda k: spec.reset(k))), keys)
    actions = jnp.arange(batch, dtype=jnp.int32) % spec.num_actions
    step = jax.jit(jax.vmap(lambda k, s, a: spec.step(k, s, a)))
    return obs, call(step, jax.random.split(jax.random.key(1), batch), states, actions)


@pytest.mark.parametrize("alias", list(EXPECTED))
@pytest.mark.slow
def test_alias_shapes_and_batched_step(alias):
    gid, obs_shape, num_actions, max_steps = EXPECTED[alias]
    spec = envs.make(alias.upper())  # aliases are case-insensitive
    assert (spec.name, spec.obs_shape, spec.num_actions, spec.max_steps) == (
        alias,
        obs_shape,
        num_actions,
        max_steps,
    )
    assert envs.make(gid).name == alias  # the gymnax id resolves to the same env and name
    obs, out = batch_step(spec, run=alias not in TRACE_ONLY)
    assert obs.shape == (3, *obs_shape) and obs.dtype == jnp.float32
    assert out.obs.shape == out.next_obs.shape == (3, *obs_shape)
    assert out.obs.dtype == out.next_obs.dtype == out.reward.dtype == jnp.float32
    assert out.reward.shape == out.terminated.shape == out.truncated.shape == (3,)
    assert out.terminated.dtype == out.truncated.dtype == jnp.bool_


def test_gymnax_ids_work_and_are_cast_to_float32():
    assert envs.make("CartPole-v1").name == "cartpole"  # ids with an alias share its name
    rooms = envs.make("fourrooms-misc")  # gymnax gives int32 observations here
    assert rooms.name == "FourRooms-misc"
    obs, out = batch_step(rooms)
    assert obs.dtype == out.obs.dtype == out.next_obs.dtype == jnp.float32
    umbrella = envs.make("UmbrellaChain-bsuite")  # gymnax gives int32 rewards here
    assert batch_step(umbrella)[1].reward.dtype == jnp.float32


def test_unknown_name_lists_valid_names():
    with pytest.raises(UserError) as e:
        envs.make("cartpol")
    msg = str(e.value)
    assert "Did you mean 'cartpole'?" in msg
    assert all(n in msg for n in envs.names())
    assert "Pong-misc" in msg


@pytest.mark.parametrize("name", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_continuous_actions_rejected(name):
    with pytest.raises(UserError, match="discrete actions"):
        envs.make(name)


@pytest.mark.parametrize("name", ["chain-x", "chain-1", "chain-2", "chain-1001", "chain", "chain-3.5"])
def test_bad_chain_names(name):
    with pytest.raises(UserError, match=r"chain-N with an integer N from 3 to 1000"):
        envs.make(name)


def test_chain_names_accepted():
    assert envs.make("chain-3").obs_shape == (3,)
    assert envs.make("Chain-030").name == "chain-30"
    assert envs.make("chain-1000").max_steps == 1009


def test_pong_is_atari_pong_and_the_gymnax_toy_keeps_its_id():
    pytest.importorskip("ale_py")
    spec = envs.make("Pong")
    assert spec.host_stepped and spec.obs_shape == (4, 84, 84) and spec.num_actions == 6
    assert envs.make("Pong-misc").num_actions == 3


def rollout(spec, actions, key):
    """One episode's stacked StepOuts for a fixed action sequence."""
    _, state = spec.reset(key)

    def body(state, xs):
        k, a = xs
        out = spec.step(k, state, a)
        return out.state, out

    return jax.lax.scan(body, state, (jax.random.split(key, len(actions)), actions))[1]


def test_cartpole_time_limit_is_truncation_and_obs_is_reset():
    spec = envs.make("cartpole")
    spec = dataclasses.replace(spec, params=dataclasses.replace(spec.params, max_steps_in_episode=5))
    outs = jax.jit(rollout, static_argnums=0)(spec, jnp.ones(5, jnp.int32), jax.random.key(0))
    assert not outs.terminated.any()
    np.testing.assert_array_equal(outs.truncated, [False] * 4 + [True])
    np.testing.assert_array_equal(outs.obs[:4], outs.next_obs[:4])
    # Pushing right for 5 steps builds cart speed far outside the reset range of +-0.05.
    assert abs(float(outs.next_obs[-1, 1])) > 0.5
    assert np.all(np.abs(outs.obs[-1]) <= 0.05)
    assert int(outs.state.time[-1]) == 0


def test_cartpole_fall_is_termination():
    spec = envs.make("cartpole")
    outs = rollout(spec, jnp.ones(40, jnp.int32), jax.random.key(0))
    first = int(np.argmax(outs.terminated))
    assert outs.terminated[first] and not outs.truncated.any()
    assert abs(float(outs.next_obs[first, 2])) > spec.params.theta_threshold_radians  # pole fell
    assert np.all(np.abs(outs.obs[first]) <= 0.05)


def test_terminal_last_step_is_not_truncation():
    # DeepSea always ends at row == size on its last allowed step; gymnax flags both, rlx only terminated.
    spec = envs.make("deepsea")
    outs = rollout(spec, jnp.zeros(spec.max_steps, jnp.int32), jax.random.key(0))
    np.testing.assert_array_equal(outs.terminated, [False] * (spec.max_steps - 1) + [True])
    assert not outs.truncated.any()


def test_table_rows_match_make():
    rows = envs.table()
    assert [r[0] for r in rows] == envs.names()
    for alias, source, obs_shape, num_actions in rows[:-2]:
        gid, shape, n_act, _ = EXPECTED[alias]
        assert (source, obs_shape, num_actions) == (gid, shape, n_act)
    assert rows[-2][0] == "pong" and rows[-2][2:] == ((4, 84, 84), 6)
    assert rows[-1] == ("chain-N", "rlx N-chain", ("N",), 2)
