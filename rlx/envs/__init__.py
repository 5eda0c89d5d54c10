"""Environments by name: gymnax envs, short aliases and the N-chain; the one adapter for the gymnax 1.0 API."""

import dataclasses
import re
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
CHAIN_MIN, CHAIN_MAX = 3, 1000
_CHAIN_HINT = f"Use chain-N with an integer N from {CHAIN_MIN} to {CHAIN_MAX}, e.g. chain-30."


@dataclass(frozen=True)
class EnvSpec:
    """A built environment and the facts agents need about it."""

    name: str
    env: Any
    params: Any
    obs_shape: tuple[int, ...]
    num_actions: int
    max_steps: int
    # Known optimum of an episode whose length is always max_steps (the N-chain); None elsewhere.
    # Agents use it to test after every episode whether the greedy policy is optimal ("solved").
    optimal_return: float | None = None
    # "gymnax" (pure JAX, state in the carry) or "atari" (emulators in the host process; see envs.atari):
    # host envs cannot be sharded over devices and restart their episodes when a run resumes.
    kind: str = "gymnax"
    clip_reward: bool = False  # agents learn from sign(reward) (Atari); returns are always reported raw


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


def table() -> list[tuple[str, str, tuple, int]]:
    """(alias, source, obs_shape, num_actions) per alias; the chain row uses the symbolic shape ('N',)."""
    specs = {alias: make(alias) for alias in ALIASES}
    rows = [(a, gid, specs[a].obs_shape, specs[a].num_actions) for a, gid in ALIASES.items()]
    from rlx.envs import atari

    pong = ("pong", "ALE Pong (ale-py, rlx[atari])", atari.OBS_SHAPE, atari.NUM_ACTIONS)
    return [*rows, pong, ("chain-N", "rlx N-chain", ("N",), 2)]


def make(name: str) -> EnvSpec:
    """Build an environment by alias, chain-N or discrete-action gymnax id; UserError otherwise."""
    import gymnax
    from gymnax.environments import spaces

    key = name.strip().lower()
    if key == "chain" or key.startswith("chain-"):
        from rlx.envs.chain import optimal_return

        env = _make_chain(name)
        spec = _spec(env.name, env, env.default_params)
        return dataclasses.replace(spec, optimal_return=optimal_return(env.default_params.n))
    if key in ("pong", "atari-pong", "pongnoframeskip-v4", "ale/pong-v5"):
        from rlx.envs import atari

        atari.require_ale()
        return EnvSpec(
            name="pong",
            env=None,
            params=None,
            obs_shape=atari.OBS_SHAPE,
            num_actions=atari.NUM_ACTIONS,
            max_steps=atari.FRAMES_PER_EPISODE // atari.FRAME_SKIP,
            kind="atari",
            clip_reward=True,
        )
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
    return _spec(alias or gid, env, params)


def _make_chain(name: str):
    from rlx.envs.chain import NChain

    m = re.fullmatch(r"chain-(\d+)", name.strip().lower())
    n = int(m.group(1)) if m else None
    if n is None or not CHAIN_MIN <= n <= CHAIN_MAX:
        raise UserError(f"Bad chain name '{name}'. {_CHAIN_HINT}")
    return NChain(n)


def _spec(name: str, env, params) -> EnvSpec:
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


def reset(spec: EnvSpec, key) -> tuple[jax.Array, Any]:
    """Reset one env; returns (float32 obs, state)."""
    obs, state = spec.env.reset(key, spec.params)
    return obs.astype(jnp.float32), state


def step(spec: EnvSpec, key, state, action) -> StepOut:
    """Step one env with auto-reset; truncated excludes terminated so it always means 'bootstrap'."""
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


def reset_batch(spec: EnvSpec, keys, role: str = "train") -> tuple[jax.Array, Any]:
    """Reset one env per key; returns (obs, state) batched along the first axis."""
    if spec.kind == "atari":
        from rlx.envs import atari

        obs, state, _ = atari.reset(keys, role)
        return obs, state
    return jax.vmap(lambda k: reset(spec, k))(keys)


def step_batch(spec: EnvSpec, keys, state, actions, role: str = "train") -> StepOut:
    """Step a batch of envs (one key each); StepOut fields are batched and reset_step is always set."""
    if spec.kind == "atari":
        from rlx.envs import atari

        obs, state, reward, terminated, truncated, reset_step = atari.step(state, actions, role)
        return StepOut(obs, state, reward, terminated, truncated, obs, reset_step)
    out = jax.vmap(lambda k, s, a: step(spec, k, s, a))(keys, state, actions)
    return out._replace(reset_step=jnp.zeros_like(out.terminated))


def random_states(spec: EnvSpec, key, n: int, num_envs: int = 16) -> jax.Array:
    """n observations visited by a uniform-random policy in num_envs envs (gymnax envs only): a fixed probe
    batch for representation diagnostics."""
    k_reset, k_steps = jax.random.split(key)
    obs, state = reset_batch(spec, jax.random.split(k_reset, num_envs))

    def body(c, k):
        obs, state = c
        k_act, k_env = jax.random.split(k)
        actions = jax.random.randint(k_act, (num_envs,), 0, spec.num_actions)
        out = step_batch(spec, jax.random.split(k_env, num_envs), state, actions)
        return (out.obs, out.state), out.obs

    _, seen = jax.lax.scan(body, (obs, state), jax.random.split(k_steps, -(-n // num_envs)))
    return seen.reshape((-1,) + tuple(spec.obs_shape))[:n]
