"""Atari Pong (ALE) inside the compiled loop, through ale-py's vector environment and its XLA interface.

Fixed protocol (the DQN / parameter-noise papers' setting): ale-py 0.12 with its bundled ROM, no sticky
actions (repeat_action_probability = 0), the 6-action minimal set, up to 30 no-op starts, frame-skip 4
with a max-pool over the last two frames, 84x84 grayscale, a stack of 4 frames (uint8, channels first),
full episodes (no life loss; Pong has none), at most 108,000 frames (27,000 agent steps) per episode.
Rewards come back unclipped (the game score); agents clip them for learning (EnvSpec.clip_reward).

The emulators live in the host process, outside JAX: the env "state" that JAX carries is only a flag per
env saying that its last step ended an episode. ale-py resets such an env on the next step call
(NEXT_STEP autoreset), ignoring the action; that step is marked `reset_step` so agents neither learn
from it nor count it. Because the emulator state is not in a checkpoint, a resumed run restarts the
episodes that were in flight.

The agent is vmapped over seeds while all seeds share one vector env of seeds x envs emulators: the
step and reset below are `custom_vmap` functions whose batching rule flattens the seed axis and makes
one call for the whole batch. Each (role, number of emulators) gets its own vector env, created on
first use and kept for the life of the process.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import custom_batching

from rlx.errors import UserError

GAME = "pong"
NAMES = ("pong", "atari-pong", "pongnoframeskip-v4", "ale/pong-v5")  # what `rlx train NAME` accepts
FRAMES_PER_EPISODE = 108_000
FRAME_SKIP = 4
STICKY = 0.0
NOOP_MAX = 30
OBS_SHAPE = (4, 84, 84)
NUM_ACTIONS = 6

_POOLS: dict = {}


class AtariState(NamedTuple):
    """What JAX carries per env batch: whether each env's last step ended an episode (its next step is a
    reset), and the vector env's handle, threaded from call to call so that XLA keeps the emulator calls
    in program order."""

    needs_reset: jax.Array
    handle: jax.Array


def require_ale():
    """Import ale_py or raise a UserError that says how to install it."""
    try:
        import ale_py
    except ImportError:
        raise UserError("Atari Pong needs ale-py: pip install 'rlx[atari]' (its wheel ships the ROMs).") from None
    try:
        import chex  # noqa: F401  (ale-py's XLA interface imports it)
    except ImportError:
        raise UserError("Atari Pong needs chex for ale-py's XLA interface: pip install 'rlx[atari]'.") from None
    return ale_py


def _pool(role: str, num_envs: int):
    """(handle, reset, step) of the vector env for this role and size, created outside any trace."""
    if (role, num_envs) not in _POOLS:
        ale_py = require_ale()
        with jax.ensure_compile_time_eval():  # the XLA functions build constants; they must not be tracers
            env = ale_py.AtariVectorEnv(
                GAME,
                num_envs=num_envs,
                max_num_frames_per_episode=FRAMES_PER_EPISODE,
                repeat_action_probability=STICKY,
                frameskip=FRAME_SKIP,
                noop_max=NOOP_MAX,
                stack_num=OBS_SHAPE[0],
                img_height=OBS_SHAPE[1],
                img_width=OBS_SHAPE[2],
                grayscale=True,
                maxpool=True,
                episodic_life=False,
                reward_clipping=False,
            )
            handle, reset, step = env.xla()
        _POOLS[(role, num_envs)] = (env, np.asarray(handle), reset, step)
    return _POOLS[(role, num_envs)][1:]


def _reset_flat(role: str, seeds):
    handle, reset, _ = _pool(role, seeds.shape[0])
    handle, (obs, info) = reset(handle, seed=seeds.astype(jnp.int32))
    return handle, obs, info["episode_frame_number"]


def _step_flat(role: str, handle, actions):
    _, _, step = _pool(role, actions.shape[0])
    handle, (obs, reward, terminated, truncated, _) = step(handle, actions.astype(jnp.int32))
    return handle, obs, reward.astype(jnp.float32), terminated.astype(bool), truncated.astype(bool)


def _with_seed_batching(flat, role: str):
    """flat(role, *args) for one env batch, made into a function whose vmap over seeds flattens the seed
    axis into one call; the first argument of both is the handle (the same for every seed)."""

    f = custom_batching.custom_vmap(lambda *args: flat(role, *args))

    @f.def_vmap
    def rule(axis_size, in_batched, *args):
        args = [a if b else jnp.broadcast_to(a, (axis_size, *a.shape)) for a, b in zip(args, in_batched, strict=True)]
        handle, rest = (args[0][0], args[1:]) if flat is _step_flat else (None, args)
        n = rest[0].shape[1]
        # Nested vmaps arrive here one at a time, so the inner rule may already see 2-D input.
        flat_args = [r.reshape(axis_size * n, *r.shape[2:]) for r in rest]
        out = f(handle, *flat_args) if handle is not None else f(*flat_args)
        new_handle = jnp.broadcast_to(out[0], (axis_size, *out[0].shape))
        out = (new_handle, *(y.reshape(axis_size, n, *y.shape[1:]) for y in out[1:]))
        return out, tuple(True for _ in out)

    return f


_FNS: dict = {}


def _fn(kind: str, role: str):
    if (kind, role) not in _FNS:
        _FNS[(kind, role)] = _with_seed_batching(_reset_flat if kind == "reset" else _step_flat, role)
    return _FNS[(kind, role)]


def reset(keys, role: str = "train"):
    """Reset one emulator per key (its seed drawn from the key); returns (uint8 obs, AtariState, frames
    played at reset, i.e. the no-op start)."""
    seeds = jax.vmap(lambda k: jax.random.randint(k, (), 0, np.iinfo(np.int32).max))(keys)
    handle, obs, frames = _fn("reset", role)(seeds)
    return obs, AtariState(jnp.zeros(keys.shape[:1], bool), handle), frames


def step(state: AtariState, actions, role: str = "train"):
    """Step all envs; returns (obs, state, reward, terminated, truncated, reset_step)."""
    handle, obs, reward, terminated, truncated = _fn("step", role)(state.handle, actions)
    reset_step = state.needs_reset
    # On a reset step ale-py ignored the action and returned the first observation of a new episode.
    terminated = terminated & ~reset_step
    truncated = truncated & ~terminated & ~reset_step
    reward = jnp.where(reset_step, 0.0, reward)
    return obs, AtariState(terminated | truncated, handle), reward, terminated, truncated, reset_step


def _reset_batch(spec, keys, role: str):
    obs, state, _ = reset(keys, role)
    return obs, state


def _step_batch(spec, keys, state, actions, role: str):
    from rlx.envs import StepOut

    obs, state, reward, terminated, truncated, reset_step = step(state, actions, role)
    return StepOut(obs, state, reward, terminated, truncated, obs, reset_step)


def _no_single_env(*_):
    raise NotImplementedError("Atari envs step as one vector env on the host; use reset_batch and step_batch.")


def spec():
    """The EnvSpec of Atari Pong (needs ale-py: UserError with the install command otherwise)."""
    from rlx.envs import EnvAdapter, EnvSpec

    require_ale()
    return EnvSpec(
        name="pong",
        env=None,
        params=None,
        obs_shape=OBS_SHAPE,
        num_actions=NUM_ACTIONS,
        max_steps=FRAMES_PER_EPISODE // FRAME_SKIP,
        adapter=EnvAdapter(_no_single_env, _no_single_env, _reset_batch, _step_batch),
        host_stepped=True,
        clip_reward=True,
        reward_bound=1.0,  # of the clipped reward agents learn from
    )
