"""N-chain: dynamics, observation, time limit, and the DP references it is judged against."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import envs
from rlx.envs.chain import optimal_return, random_policy_reach_prob


def rollout(spec, actions, key):
    """Run one episode from reset with a fixed action sequence; returns the stacked StepOuts."""
    obs, state = spec.reset(key)

    def body(state, xs):
        k, a = xs
        out = spec.step(k, state, a)
        return out.state, out

    keys = jax.random.split(key, actions.shape[0])
    return jax.lax.scan(body, state, (keys, actions))[1]


@pytest.mark.parametrize("n", [3, 10, 30])
def test_optimal_return_is_what_always_right_collects(n):
    spec = envs.make(f"chain-{n}")
    outs = jax.jit(rollout, static_argnums=0)(spec, jnp.ones(spec.max_steps, jnp.int32), jax.random.key(0))
    assert float(outs.reward.sum()) == pytest.approx(optimal_return(n), rel=1e-6)


@pytest.mark.parametrize("n", [3, 4])
def test_optimal_return_is_max_over_every_action_sequence(n):
    spec = envs.make(f"chain-{n}")
    seqs = jnp.array(list(itertools.product([0, 1], repeat=spec.max_steps)), jnp.int32)
    returns = jax.jit(jax.vmap(lambda a: rollout(spec, a, jax.random.key(0)).reward.sum()))(seqs)
    assert float(returns.max()) == pytest.approx(optimal_return(n), rel=1e-6)


@pytest.mark.parametrize("n", [4, 5, 6])
@pytest.mark.slow
def test_random_policy_reaches_end_at_dp_rate(n):
    spec = envs.make(f"chain-{n}")
    episodes = 4000

    def reached(key):
        k_act, k_env = jax.random.split(key)
        actions = jax.random.randint(k_act, (spec.max_steps,), 0, 2)
        return jnp.any(rollout(spec, actions, k_env).next_obs[:, -1] == 1.0)

    keys = jax.random.split(jax.random.key(n), episodes)
    rate = float(jax.jit(jax.vmap(reached))(keys).mean())
    p = random_policy_reach_prob(n)
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / episodes)


def test_random_reach_prob_small_cases_and_trend():
    # N=3 has only 2**12 equally likely action sequences: enumerate them with independent numpy dynamics.
    n, spec = 3, envs.make("chain-3")
    seqs = np.array(list(itertools.product([0, 1], repeat=spec.max_steps)))
    s, hit = np.full(len(seqs), 2), np.zeros(len(seqs), bool)
    for t in range(spec.max_steps):
        s = np.clip(s + np.where(seqs[:, t] == 1, 1, -1), 1, n)
        hit |= s == n
    assert random_policy_reach_prob(3) == pytest.approx(hit.mean(), abs=1e-12)
    probs = [random_policy_reach_prob(k) for k in (4, 6, 10, 30)]
    assert all(a > b for a, b in itertools.pairwise(probs)) and probs[-1] < 1e-4


def test_observation_start_and_time_limit():
    n = 5
    spec = envs.make(f"chain-{n}")
    assert spec.obs_shape == (n,) and spec.num_actions == 2 and spec.max_steps == n + 9
    obs, _ = spec.reset(jax.random.key(0))
    assert obs.dtype == jnp.float32
    np.testing.assert_array_equal(obs, [1, 1, 0, 0, 0])  # starts at s2

    # right, right, left, then left to the end: s3, s4, s3, s2, s1, s1, ...
    actions = jnp.array([1, 1, 0] + [0] * (spec.max_steps - 3), jnp.int32)
    outs = rollout(spec, actions, jax.random.key(1))
    np.testing.assert_array_equal(outs.next_obs[0], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(outs.next_obs[1], [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(outs.next_obs[2], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(outs.next_obs[4], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(outs.reward[:6], [0, 0, 0, 0, 0.001, 0.001], rtol=1e-6)

    assert not outs.terminated.any()
    np.testing.assert_array_equal(outs.truncated, np.arange(1, spec.max_steps + 1) == n + 9)
    # Before the limit the agent acts on the true next obs; at the limit obs is the reset obs.
    np.testing.assert_array_equal(outs.obs[:-1], outs.next_obs[:-1])
    np.testing.assert_array_equal(outs.next_obs[-1], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(outs.obs[-1], [1, 1, 0, 0, 0])


def test_last_state_rewards_and_stays():
    spec = envs.make("chain-4")
    outs = rollout(spec, jnp.ones(spec.max_steps, jnp.int32), jax.random.key(0))
    # s2 -> s3 -> s4, then pushing right keeps it at s4 with reward 1 every step.
    np.testing.assert_allclose(outs.reward, [0.0] + [1.0] * (spec.max_steps - 1))
    np.testing.assert_array_equal(outs.next_obs[-1], np.ones(4))
