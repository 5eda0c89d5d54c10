import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx import exploration
from rlx.errors import UserError


class _HP:
    eps_start, eps_end, eps_decay_steps = 1.0, 0.05, 1000.0


def test_linear_epsilon_schedule():
    vals = [float(exploration.linear_epsilon(s, _HP)) for s in (0, 500, 1000, 5000)]
    np.testing.assert_allclose(vals, [1.0, 0.525, 0.05, 0.05], rtol=1e-6)


def test_eps_greedy_explores_at_rate_eps():
    q = jnp.tile(jnp.array([[0.0, 1.0, 0.0, 0.0]]), (20000, 1))
    a = exploration.eps_greedy_actions(jax.random.PRNGKey(0), q, 0.2)
    non_greedy = float(jnp.mean(a != 1))
    # a random action is non-greedy with prob 3/4, so 0.2 * 0.75 = 0.15
    assert abs(non_greedy - 0.15) < 0.01


def test_unknown_strategy_is_a_user_error():
    with pytest.raises(UserError, match="unknown noise"):
        exploration.make(C.Config(noise="paramm"), 2)
