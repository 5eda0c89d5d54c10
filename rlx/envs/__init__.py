"""Environments by name: gymnax envs, short aliases, the N-chain and Atari Pong.

An `EnvSpec` carries everything agents and the runner need: shapes, episode length, capabilities
(`host_stepped`, `optimal_return`, `clip_reward`, `reward_bound`) and its own reset/step, single and batched,
through the adapter of its family (`GYMNAX` here, the one adapter for the gymnax 1.0 API; `atari.spec()` for ALE). Code
outside rlx/envs asks the spec; it never branches on which family an env is.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rlx.errors import UserError, did_you_mean

ALIASES = {
    "cartpole": "CartPole-v1",
    "acrobot": "Acrobot-v1",
    "mountaincar": "MountainCar-v0",
    "breakout": "Breakout-MinAtar",
    "asterix": "Asterix-MinAtar",
    "freeway": "Freeway-MinAtar",
    "spaceinvaders": "SpaceInvaders-MinAtar",
    "seaquest": "Seaquest-MinAtar",
    "deepsea": "DeepSea-bsuite",
    "catch": "Catch-bsuite",
}

# The largest |reward| of one step of each aliased env, from gymnax's sources: 1 per step alive, per step of
# time cost, per brick, treasure, crossing, alien or sub hit, per catch or miss, for reaching DeepSea's corner;
# Seaquest's surfacing with six divers pays up to 10. Rare sums of two events in one step stay well within the
# margin rlx.health allows. Other gymnax ids have no known bound.
REWARD_BOUNDS = {alias: 1.0 for alias in ALIASES} | {"seaquest": 10.0}


class EnvAdapter(NamedTuple):
    """How one family of envs resets and steps; each function takes the spec first."""

    reset: Callable  # (spec, key) -> (obs, state) of one env
    step: Callable  # (spec, key, state, action) -> StepOut of one env (reset_step None)
    reset_batch: Callable  # (spec, keys, role) -> (obs, state) batched along the first axis
    step_batch: Callable  # (spec, keys, state, actions, role) -> StepOut, batched, reset_step set


@dataclass(frozen=True)
class EnvSpec:
    """A built environment, the facts agents need about it, and its own reset and step."""

    name: str
    env: Any
    params: Any
    obs_shape: tuple[int, ...]
    num_actions: int
    max_steps: int
    adapter: EnvAdapter = None  # GYMNAX unless the family brings its own (set in __post_init__)
    # Known optimum of an episode whose length is always max_steps (the N-chain); None elsewhere.
    # Agents use it to test after every episode whether the greedy policy is optimal ("solved").
    optimal_return: float | None = None
    # Emulators in the host process (Atari; see envs.atari) rather than state in the carry: such envs
    # cannot be sharded over devices, have no probe states, and restart their episodes when a run resumes.
    host_stepped: bool = False
    clip_reward: bool = False  # agents learn from sign(reward) (Atari); returns are always reported raw
    # Largest |reward| of one step that agents learn from (after clip_reward, before td.reward_scale); None when
    # rlx does not know it. rlx.health bounds |Q| with it.
    reward_bound: float | None = None

    def __post_init__(self):
        if self.adapter is None:
            object.__setattr__(self, "adapter", GYMNAX)

    def reset(self, key) -> tuple[jax.Array, Any]:
        """Reset one env; returns (float32 obs, state)."""
        return self.adapter.reset(self, key)

    def step(self, key, state, action) -> "StepOut":
        """Step one env with auto-reset."""
        return self.adapter.step(self, key, state, action)

    def reset_batch(self, keys, role: str = "train") -> tuple[jax.Array, Any]:
        """Reset one env per key; returns (obs, state) batched along the first axis. `role` keeps host envs
        for training and evaluation apart."""
        return self.adapter.reset_batch(self, keys, role)

    def step_batch(self, keys, state, actions, role: str = "train") -> "StepOut":
        """Step a batch of envs (one key each); StepOut fields are batched and reset_step is always set."""
        return self.adapter.step_batch(self, keys, state, actions, role)


class StepOut(NamedTuple):
    """One transition; obs/state are after auto-reset, next_obs is the true pre-reset observation."""

    obs: jax.Array
    state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    # True where this step only started a new episode (host envs that reset on the step after a terminal
    # one): agents neither learn from nor count it. None from the single-env `step`.
    reset_step: Any = None


def names() -> list[str]:
    """Short aliases, Atari Pong and the chain-N pattern, for help texts."""
    return [*ALIASES, "pong", "chain-N"]


def stepped_on_host(name: str) -> bool:
    """Whether env `name` is host-stepped (its spec's `host_stepped`), from the name alone: callers that must
    decide before jax touches a device (rlx.distributed) cannot build the env."""
    from rlx.envs import atari

    return name.strip().lower() in atari.NAMES


def table() -> list[tuple[str, str, tuple, int]]:
    """(alias, source, obs_shape, num_actions) per alias; the chain row uses the symbolic shape ('N',)."""
    from rlx.envs import atari

    specs = {alias: make(alias) for alias in ALIASES}
    rows = [(a, gid, specs[a].obs_shape, specs[a].num_actions) for a, gid in ALIASES.items()]
    pong = ("pong", "ALE Pong (ale-py, rlx[atari])", atari.OBS_SHAPE, atari.NUM_ACTIONS)
    return [*rows, pong, ("chain-N", "rlx N-chain", ("N",), 2)]


def make(name: str) -> EnvSpec:
    """Build an environment by alias, chain-N or discrete-action gymnax id; UserError otherwise."""
    import gymnax
    from gymnax.environments import spaces

    from rlx.envs import atari, chain

    key = name.strip().lower()
    if chain.is_chain_name(key):
        env = chain.make(name)
        spec = _gymnax_spec(env.name, env, env.default_params)
        return dataclasses.replace(spec, optimal_return=chain.optimal_return(env.n), reward_bound=chain.REWARD_BOUND)
    if key in atari.NAMES:
        return atari.spec()
    ids = {gid.lower(): gid for gid in gymnax.registered_envs}
    # A gymnax id that has an alias gets the alias as its name: one env, one run name.
    by_id = {gid.lower(): a for a, gid in ALIASES.items()}
    alias = key if key in ALIASES else by_id.get(key)
    gid = ALIASES[alias] if alias else ids.get(key)
    if gid is None:
        choices = [*names(), *(g for g in gymnax.registered_envs if g.lower() not in by_id)]
        raise UserError(f"Unknown environment '{name}'.{did_you_mean(name, choices)}")
    try:
        env, params = gymnax.make(gid)
    except OSError as e:  # e.g. MNISTBandit-bsuite downloads its data when built
        raise UserError(f"gymnax could not build '{gid}': {e}") from e
    if not isinstance(env.action_space(params), spaces.Discrete):
        raise UserError(
            f"'{gid}' has continuous actions; DQN-family agents need discrete actions."
            f" Try one of: {', '.join(names())}."
        )
    return dataclasses.replace(_gymnax_spec(alias or gid, env, params), reward_bound=REWARD_BOUNDS.get(alias))


def _gymnax_spec(name: str, env, params) -> EnvSpec:
    obs = jax.eval_shape(env.reset, jax.random.key(0), params)[0]
    return EnvSpec(
        name=name,
        env=env,
        params=params,
        obs_shape=tuple(obs.shape),
        num_actions=int(env.action_space(params).n),
        # gymnax 1.0's base EnvParams defines it and its is_truncated uses it, so every env has it.
        max_steps=int(params.max_steps_in_episode),
    )


# ---------------------------------------------------------------------------------------------
# The gymnax adapter: pure JAX, the env state lives in the carry


def _gymnax_reset(spec: EnvSpec, key) -> tuple[jax.Array, Any]:
    obs, state = spec.env.reset(key, spec.params)
    return obs.astype(jnp.float32), state


def _gymnax_step(spec: EnvSpec, key, state, action) -> StepOut:
    """Auto-reset step; truncated excludes terminated so it always means 'bootstrap'."""
    obs, state, reward, terminated, truncated, info = spec.env.step(key, state, action, spec.params)
    terminated = jnp.asarray(terminated, bool)
    return StepOut(
        obs=obs.astype(jnp.float32),
        state=state,
        reward=jnp.asarray(reward, jnp.float32),
        terminated=terminated,
        # gymnax sets both when the last allowed step is also terminal (DeepSea always does).
        truncated=jnp.asarray(truncated, bool) & ~terminated,
        next_obs=info["final_observation"].astype(jnp.float32),
    )


def _gymnax_reset_batch(spec: EnvSpec, keys, role: str) -> tuple[jax.Array, Any]:
    return jax.vmap(lambda k: _gymnax_reset(spec, k))(keys)


def _gymnax_step_batch(spec: EnvSpec, keys, state, actions, role: str) -> StepOut:
    out = jax.vmap(lambda k, s, a: _gymnax_step(spec, k, s, a))(keys, state, actions)
    return out._replace(reset_step=jnp.zeros_like(out.terminated))


GYMNAX = EnvAdapter(_gymnax_reset, _gymnax_step, _gymnax_reset_batch, _gymnax_step_batch)


def random_states(spec: EnvSpec, key, n: int, num_envs: int = 16) -> jax.Array:
    """n observations visited by a uniform-random policy in num_envs envs (not host-stepped envs): a fixed probe
    batch for representation diagnostics."""
    k_reset, k_steps = jax.random.split(key)
    obs, state = spec.reset_batch(jax.random.split(k_reset, num_envs))

    def body(c, k):
        obs, state = c
        k_act, k_env = jax.random.split(k)
        actions = jax.random.randint(k_act, (num_envs,), 0, spec.num_actions)
        out = spec.step_batch(jax.random.split(k_env, num_envs), state, actions)
        return (out.obs, out.state), out.obs

    _, seen = jax.lax.scan(body, (obs, state), jax.random.split(k_steps, -(-n // num_envs)))
    return seen.reshape((-1,) + tuple(spec.obs_shape))[:n]
