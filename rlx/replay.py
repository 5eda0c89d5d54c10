"""On-device replay: a ring buffer of transition pytrees, and a frame-deduplicated ring for stacked Atari frames.

Two kinds share one API (`init`, `add`, `sample`, `break_streams`), dispatched on the buffer's type (static
under jit); `stores_frames(obs_shape)` says which kind an observation gets and `nbytes(cfg, spec)` what DQN's
replay costs per seed.

- `Buffer`: each transition stored whole, for any observation.
- `FrameBuffer`, for frame stacks (S, 84, 84): consecutive stacks of one env share S - 1 frames, so storing
  both stacks of every transition keeps each frame 2S times (8 with S = 4: 5.6 GB per seed at 100k
  transitions). It keeps each env's stream of newest frames once and rebuilds stacks by index, about 1/8
  of the bytes. This is exact because of two facts about ale-py (envs.atari) streams: transition t's
  next_obs is the obs of the env's transition t + 1 (NEXT_STEP autoreset: the step after an episode's end
  is a "reset step" whose next_obs is the new episode's first stack), and a fresh stack is zero-padded,
  [0, ..., 0, first_frame], so an episode's stacks never hold frames of the episode before. Where a stream
  breaks off (a resume restarts the episodes), `break_streams` keeps the observation that is cut off.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from rlx.errors import UserError
from rlx.nets import is_frame_stack

# `sample` on a FrameBuffer draws this many candidates per batch row and keeps the first that is not cut (_draw).
CUT_TRIES = 8


class Buffer(NamedTuple):
    """Ring buffer state; `data` leaves have shape (capacity, ...)."""

    data: Any
    pos: jax.Array  # next slot to write
    size: jax.Array  # number of valid slots


@struct.dataclass
class FrameBuffer:
    """Per-env rings of slots, one slot per env step: slot j of env e holds the newest frame of that env's
    observation S_j and the transition taken from it. The stacks S_j and S_{j+1} are rebuilt from the frames
    of slots j - stack + 1 .. j + 1, zeroing frames older than the latest slot whose observation starts an
    episode (`first`)."""

    frames: jax.Array  # (num_envs, slots, 84, 84) uint8: the newest frame of each slot's observation
    action: jax.Array  # (num_envs, slots) int32
    reward: jax.Array  # (num_envs, slots) float32
    terminated: jax.Array  # (num_envs, slots) bool
    # The slot's observation is [0, ..., 0, frame]. Decided from the data: a stack whose older frames are all
    # zero starts an episode or holds only zeros before its newest frame, and zeroing those is exact either way.
    first: jax.Array  # (num_envs, slots) bool
    cut: jax.Array  # (num_envs, slots) bool: an observation with no transition from it (break_streams)
    pos: jax.Array  # next slot to write (all envs step together)
    size: jax.Array  # slots written per env, at most `slots`
    stack: int = struct.field(pytree_node=False, default=4)  # frames per observation


def stores_frames(obs_shape) -> bool:
    """Whether observations of this shape get a FrameBuffer: Atari frame stacks (S, 84, 84), whose streams
    satisfy the facts in the module docstring."""
    return is_frame_stack(obs_shape)


def transition(obs) -> dict:
    """An example transition (core.env_step's, less `truncated`) for one env's observation `obs`."""
    return dict(obs=obs, action=jnp.int32(0), reward=jnp.float32(0), next_obs=obs, terminated=jnp.bool_(False))


def init(example, capacity: int, num_envs: int = 1, frames: bool | None = None):
    """An empty buffer for `capacity` transitions shaped like `example` (a pytree of arrays), added
    `num_envs` at a time. A transition dict whose obs is a frame stack gets a FrameBuffer (`frames`
    overrides), with capacity // num_envs slots per env: a remainder of the capacity is dropped."""
    if frames is None:
        frames = isinstance(example, dict) and "obs" in example and stores_frames(jnp.shape(example["obs"]))
    if not frames:
        data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.asarray(x).dtype), example)
        return Buffer(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    stack, *frame = jnp.shape(example["obs"])
    slots = capacity // num_envs
    if slots <= stack:
        raise UserError(f"dqn.buffer_size ({capacity}) must be at least {stack + 1} x dqn.num_envs ({num_envs}) for "
                        f"frame stacks: each env's ring needs more slots than an observation has frames.")  # fmt: skip
    per_slot = functools.partial(jnp.zeros, (num_envs, slots))
    return FrameBuffer(jnp.zeros((num_envs, slots, *frame), jnp.uint8), per_slot(jnp.int32), per_slot(jnp.float32),
                       per_slot(bool), per_slot(bool), per_slot(bool), jnp.zeros((), jnp.int32),
                       jnp.zeros((), jnp.int32), stack)  # fmt: skip


def nbytes(cfg, spec) -> int:
    """Bytes of DQN's replay for one seed of config `cfg` on env `spec`, from shapes alone (nothing is
    allocated, no env is built). Frame stacks are uint8 (ALE); other observations are float32 (EnvSpec.reset)."""
    dtype = jnp.uint8 if stores_frames(spec.obs_shape) else jnp.float32
    obs = jax.ShapeDtypeStruct(tuple(spec.obs_shape), dtype)
    shapes = jax.eval_shape(lambda o: init(transition(o), cfg.dqn.buffer_size, cfg.dqn.num_envs), obs)
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes))


def capacity(buf: Buffer) -> int:
    """Number of slots."""
    return jax.tree.leaves(buf.data)[0].shape[0]


def add(buf, batch):
    """Append a batch of transitions (leading axis n <= capacity; a FrameBuffer takes one per env, in env
    order, and ignores next_obs: it is the next batch's obs), overwriting the oldest."""
    if isinstance(buf, FrameBuffer):
        return _write(buf, batch["obs"], batch["action"], batch["reward"], batch["terminated"], False)
    cap = capacity(buf)
    n = jax.tree.leaves(batch)[0].shape[0]
    if cap % n == 0:
        # Slots stay aligned to n, so one contiguous slice write suffices (cheaper than a scatter).
        data = jax.tree.map(lambda d, x: jax.lax.dynamic_update_slice_in_dim(d, x.astype(d.dtype), buf.pos, 0), buf.data, batch)
    else:
        idx = (buf.pos + jnp.arange(n)) % cap
        data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype)), buf.data, batch)
    return Buffer(data, (buf.pos + n) % cap, jnp.minimum(buf.size + n, cap))


def break_streams(buf, obs):
    """Call before every env's stream breaks off (core.episode_restarter on resume): `obs` (one per env)
    would otherwise be lost, though it is the next_obs of the last transition added. A FrameBuffer stores
    it in a cut slot, which completes that transition and is itself never sampled; a Buffer already holds it."""
    if not isinstance(buf, FrameBuffer):
        return buf
    n = obs.shape[0]
    return _write(buf, obs, jnp.zeros(n, jnp.int32), jnp.zeros(n), jnp.zeros(n, bool), True)


def _write(buf: FrameBuffer, obs, action, reward, terminated, cut: bool) -> FrameBuffer:
    """Store each env's observation (its newest frame and whether it starts an episode) and the transition
    taken from it in slot `pos`."""
    n, slots = buf.frames.shape[:2]
    first = jnp.all(obs[:, :-1] == 0, axis=tuple(range(1, obs.ndim)))

    def put(d, x):
        x = jnp.broadcast_to(x, (n, *d.shape[2:])).astype(d.dtype)
        return jax.lax.dynamic_update_slice_in_dim(d, x[:, None], buf.pos, 1)

    return buf.replace(frames=put(buf.frames, obs[:, -1]), action=put(buf.action, action),
                       reward=put(buf.reward, reward), terminated=put(buf.terminated, terminated),
                       first=put(buf.first, first), cut=put(buf.cut, cut),
                       pos=(buf.pos + 1) % slots, size=jnp.minimum(buf.size + 1, slots))  # fmt: skip


def sample(buf, key, batch_size: int):
    """Uniform sample with replacement from the valid transitions, as a dict of batched arrays (obs and next_obs
    full stacks for a FrameBuffer too)."""
    if isinstance(buf, FrameBuffer):
        env, slot = _draw(buf, key, batch_size)
        return gather(buf, env, slot)
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buf.size, 1))
    return jax.tree.map(lambda d: d[idx], buf.data)


def sampleable(buf: FrameBuffer):
    """(lo, count): each env's sampleable slots are its lo-th oldest (0 = oldest) and the count - 1 after it.

    The newest slot is not: its next_obs is not stored yet. Once a ring has wrapped (size == slots), neither are
    the oldest stack - 1: their older frames were overwritten. Before two adds nothing is (count 0), and `sample`
    returns the oldest slot's incomplete transition, as a plain Buffer returns zeros while empty."""
    lo = jnp.where(buf.size == buf.frames.shape[1], buf.stack - 1, 0)
    return lo, jnp.maximum(buf.size - 1 - lo, 0)


def _draw(buf: FrameBuffer, key, batch_size: int):
    """(env, slot) of batch_size uniform draws over sampleable slots that are not cut.

    Cut slots are rare (one per env per resume), so each row draws CUT_TRIES candidates and keeps the first
    uncut one: exactly uniform over uncut slots unless all CUT_TRIES are cut (then the last is kept)."""
    n, slots = buf.frames.shape[:2]
    lo, count = sampleable(buf)
    r = jax.random.randint(key, (CUT_TRIES, batch_size), 0, jnp.maximum(count, 1) * n)
    env, slot = r % n, (buf.pos - buf.size + lo + r // n) % slots
    pick = jnp.argmax((~buf.cut[env, slot]).at[-1].set(True), axis=0)[None]  # the first uncut try, else the last
    return jnp.take_along_axis(env, pick, 0)[0], jnp.take_along_axis(slot, pick, 0)[0]


def gather(buf: FrameBuffer, env, slot) -> dict:
    """The transitions at slots `slot` of envs `env` (int arrays of one shape), with rebuilt obs and next_obs."""
    slots = buf.frames.shape[1]
    idx = (slot[..., None] + jnp.arange(-buf.stack + 1, 2)) % slots  # the look-back, the slot and the next
    frames, first = buf.frames[env[..., None], idx], buf.first[env[..., None], idx]
    return dict(obs=_stack(frames[..., :-1, :, :], first[..., :-1]), action=buf.action[env, slot],
                reward=buf.reward[env, slot], next_obs=_stack(frames[..., 1:, :, :], first[..., 1:]),
                terminated=buf.terminated[env, slot])  # fmt: skip


def _stack(frames, first):
    """A stack from consecutive slots' frames (..., S, H, W), zeroing the frames older than the last `first`."""
    firsts_after = jnp.cumsum(first[..., ::-1], axis=-1)[..., ::-1] - first
    return jnp.where((firsts_after == 0)[..., None, None], frames, 0).astype(frames.dtype)
