"""N-chain (Osband et al. 2016, Plappert et al. 2018) as a gymnax Environment, plus exact DP references."""

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from rlx.errors import UserError

LEFT_REWARD = 0.001
RIGHT_REWARD = 1.0
REWARD_BOUND = max(abs(LEFT_REWARD), abs(RIGHT_REWARD))  # the largest |reward| of one step
START = 2  # states are 1-based, s1..sN, as in the papers
MIN_N, MAX_N = 3, 1000
_NAME = re.compile(r"chain-(\d+)")


def episode_length(n: int) -> int:
    """Steps in every episode of chain-N: N + 9, as in the papers (long enough to reach sN and collect)."""
    return n + 9


def is_chain_name(name: str) -> bool:
    """True for names that ask for the N-chain ("chain", "chain-30"), valid or not."""
    key = name.strip().lower()
    return key == "chain" or key.startswith("chain-")


def length(name: str) -> int | None:
    """N of a valid chain-N name, else None."""
    m = _NAME.fullmatch(name.strip().lower())
    n = int(m.group(1)) if m else None
    return n if n is not None and MIN_N <= n <= MAX_N else None


def make(name: str) -> "NChain":
    """The N-chain of a chain-N name; UserError with the valid range otherwise."""
    n = length(name)
    if n is None:
        raise UserError(f"Bad chain name '{name}'. Use chain-N with an integer N from {MIN_N} to {MAX_N}, e.g. chain-30.")
    return NChain(n)


@struct.dataclass
class ChainState(environment.EnvState):
    s: jax.Array
    time: int


@struct.dataclass
class ChainParams(environment.EnvParams):
    # Static: it fixes the observation shape, so it must not become a tracer inside jit.
    n: int = struct.field(pytree_node=False, default=10)
    max_steps_in_episode: int = 19


def _reward(s_next, n):
    """Reward for the state reached: 0.001 at s1, 1 at sN, 0 elsewhere."""
    return jnp.where(s_next == n, RIGHT_REWARD, jnp.where(s_next == 1, LEFT_REWARD, 0.0))


class NChain(environment.Environment[ChainState, ChainParams]):
    """N states, start at s2, actions 0=left 1=right; N+9 steps, ended only by the time limit."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    @property
    def default_params(self) -> ChainParams:
        return ChainParams(n=self.n, max_steps_in_episode=episode_length(self.n))

    def step_env(self, key, state, action, params):
        s = jnp.clip(state.s + jnp.where(action == 1, 1, -1), 1, params.n)
        state = ChainState(s=s, time=state.time + 1)
        reward = _reward(s, params.n).astype(jnp.float32)
        # No terminal state: gymnax's is_truncated ends the episode at max_steps_in_episode.
        return self.get_obs(state, params), state, reward, jnp.array(False), {}

    def reset_env(self, key, params):
        state = ChainState(s=jnp.array(START, jnp.int32), time=0)
        return self.get_obs(state, params), state

    def get_obs(self, state, params=None, key=None):
        """Thermometer code: ones at indices 0..s-1."""
        n = self.n if params is None else params.n
        return (jnp.arange(n) < state.s).astype(jnp.float32)

    def is_terminated(self, state, params):
        return jnp.array(False)

    @property
    def name(self) -> str:
        return f"chain-{self.n}"

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (params.n,), jnp.float32)


def _next_states(n: int):
    """(left, right) successor of each state 1..n, as 0-based index arrays."""
    idx = np.arange(n)
    return np.maximum(idx - 1, 0), np.minimum(idx + 1, n - 1)


def optimal_return(n: int) -> float:
    """Best undiscounted episode return from s2, by finite-horizon value iteration."""
    left, right = _next_states(n)
    r = np.zeros(n)
    r[0], r[-1] = LEFT_REWARD, RIGHT_REWARD
    v = np.zeros(n)
    for _ in range(episode_length(n)):
        v = np.maximum(r[left] + v[left], r[right] + v[right])
    return float(v[START - 1])


def random_policy_reach_prob(n: int) -> float:
    """Exact probability that a uniform random policy visits sN at least once in an episode."""
    left, right = _next_states(n)
    p = np.zeros(n)
    p[START - 1] = 1.0
    reached = 0.0
    for _ in range(episode_length(n)):
        q = np.zeros(n)
        np.add.at(q, left, 0.5 * p)
        np.add.at(q, right, 0.5 * p)
        # sN absorbs: mass that got there has visited it and stops counting towards later visits.
        reached += q[-1]
        q[-1] = 0.0
        p = q
    return float(reached)
