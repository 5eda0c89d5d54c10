from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlx import config as C
from rlx import replay
from rlx.errors import UserError


def _buf(cap):
    return replay.init({"x": jnp.zeros(2), "a": jnp.int32(0)}, cap)


def test_ring_overwrites_oldest_and_tracks_size():
    buf = _buf(6)
    for i in range(4):  # 4 adds of 2 rows: 8 rows into 6 slots
        rows = {"x": jnp.full((2, 2), float(i)), "a": jnp.array([i, i], jnp.int32)}
        buf = replay.add(buf, rows)
    assert int(buf.size) == 6 and int(buf.pos) == 2
    np.testing.assert_array_equal(np.asarray(buf.data["a"]), [3, 3, 1, 1, 2, 2])


def test_unaligned_batches_wrap_with_scatter():
    buf = _buf(5)
    for i in range(3):
        buf = replay.add(buf, {"x": jnp.zeros((2, 2)), "a": jnp.array([2 * i, 2 * i + 1], jnp.int32)})
    np.testing.assert_array_equal(np.asarray(buf.data["a"]), [5, 1, 2, 3, 4])
    assert int(buf.size) == 5 and int(buf.pos) == 1


def test_sample_only_from_valid_slots():
    buf = _buf(100)
    buf = replay.add(buf, {"x": jnp.ones((4, 2)), "a": jnp.array([7, 8, 9, 10], jnp.int32)})
    s = replay.sample(buf, jax.random.PRNGKey(0), 256)
    assert set(np.asarray(s["a"]).tolist()) == {7, 8, 9, 10}


# ---------------------------------------------------------------------------------------------
# FrameBuffer: ale-py-like streams, checked against the plain buffer and a reference ring

FRAME = (84, 84)
FIELDS = ("obs", "action", "reward", "next_obs", "terminated")  # a transition tuple's order


class Stream:
    """One env's ale-py stream (NEXT_STEP autoreset): zero-padded fresh stacks, stacks that shift by one frame,
    and after each episode end (terminal or time limit) a reset step (terminated, reward 0) to a fresh stack.
    Frames are often all zero, so mid-episode stacks sometimes look like fresh ones."""

    def __init__(self, rng, lengths):
        self.rng, self.lengths = rng, lengths
        self.obs, self.t, self.needs_reset = self.fresh(), 0, False

    def frame(self):
        if self.rng.random() < 0.3:
            return np.zeros(FRAME, np.uint8)
        return self.rng.integers(0, 256, FRAME, dtype=np.uint8)

    def fresh(self):
        self.length = int(self.rng.choice(self.lengths))
        return np.concatenate([np.zeros((3, *FRAME), np.uint8), self.frame()[None]])

    def restart(self):
        self.obs, self.t, self.needs_reset = self.fresh(), 0, False

    def step(self):
        """(obs, action, reward, next_obs, terminated), advancing the stream."""
        action, reward = int(self.rng.integers(6)), float(self.rng.choice([-1.0, 0.0, 1.0]))
        if self.needs_reset:
            nxt, reward, terminated, self.t, self.needs_reset = self.fresh(), 0.0, True, 0, False
        else:
            nxt, self.t = np.concatenate([self.obs[1:], self.frame()[None]]), self.t + 1
            self.needs_reset = self.t >= self.length
            terminated = self.needs_reset and self.rng.random() < 0.7  # else the time limit: bootstraps
        tr = (self.obs, action, reward, nxt, terminated)
        self.obs = nxt
        return tr


def _batch(trs):
    obs, action, reward, nxt, term = (np.stack(x) for x in zip(*trs, strict=True))
    return dict(obs=jnp.asarray(obs), action=jnp.asarray(action, jnp.int32), reward=jnp.asarray(reward, jnp.float32),
                next_obs=jnp.asarray(nxt), terminated=jnp.asarray(term))  # fmt: skip


def _key(tr):
    obs, action, reward, nxt, term = (np.asarray(x) for x in tr)
    return obs.tobytes() + nxt.tobytes() + bytes([int(action), int(term)]) + np.float32(reward).tobytes()


def _run_streams(seed, num_envs, slots, steps, restarts=()):
    """Feed ale-py-like streams to a FrameBuffer and a plain Buffer of the same capacity, and after every env step
    compare every sampleable (env, slot) with a reference ring of the true transitions (None: a cut slot). With
    no restarts the plain buffer holds the same transitions at the same positions (slot * num_envs + env)."""
    rng = np.random.default_rng(seed)
    streams = [Stream(rng, [1, 1, 2, 3, 4, 5, 9]) for _ in range(num_envs)]
    obs0 = jnp.zeros((4, *FRAME), jnp.uint8)
    fb = replay.init(replay.transition(obs0), num_envs * slots, num_envs)
    plain = replay.init(replay.transition(obs0), num_envs * slots, num_envs, frames=False)
    assert isinstance(fb, replay.FrameBuffer) and isinstance(plain, replay.Buffer)
    add, brk = jax.jit(replay.add), jax.jit(replay.break_streams)
    env, slot = (jnp.asarray(a.ravel()) for a in np.indices((num_envs, slots)))
    gather = jax.jit(lambda b: replay.gather(b, env, slot))
    ref, written = [[None] * slots for _ in range(num_envs)], 0
    for t in range(steps):
        if t in restarts:
            fb = brk(fb, jnp.asarray(np.stack([s.obs for s in streams])))
            for e, s in enumerate(streams):
                ref[e][written % slots] = None
                s.restart()
            written += 1
        trs = [s.step() for s in streams]
        fb, plain = add(fb, _batch(trs)), add(plain, _batch(trs))
        for e, tr in enumerate(trs):
            ref[e][written % slots] = tr
        written += 1
        got = jax.tree.map(lambda x: np.asarray(x).reshape(num_envs, slots, *x.shape[1:]), gather(fb))
        plain_data = list(zip(*(np.asarray(plain.data[k]) for k in FIELDS), strict=True))
        lo = 3 if written >= slots else 0  # sampleable: logical slots lo .. size - 2, oldest first
        size = min(written, slots)
        valid = []
        for e in range(num_envs):
            for k in range(lo, size - 1):
                j = (written - size + k) % slots
                if ref[e][j] is None:
                    continue
                valid.append(ref[e][j])
                want = ref[e][j]
                for name, w in zip(FIELDS, want, strict=True):
                    np.testing.assert_array_equal(got[name][e, j], w, err_msg=f"step {t} env {e} slot {j} {name}")
                if not restarts:
                    naive = plain_data[j * num_envs + e]
                    assert _key(naive) == _key(want), f"step {t} env {e} slot {j}: the plain buffer differs"
        assert (lo, size - 1 - lo) == tuple(int(x) for x in replay.sampleable(fb))
    return fb, valid


def _assert_samples_valid(fb, valid, n=512):
    s = jax.tree.map(np.asarray, jax.jit(replay.sample, static_argnums=2)(fb, jax.random.PRNGKey(3), n))
    keys = {_key(tr) for tr in valid}
    picked = [_key(tuple(s[k][i] for k in FIELDS)) for i in range(n)]
    assert set(picked) == keys  # only valid transitions, and (n >> len(keys)) every one of them


def test_frame_buffer_rebuilds_every_valid_transition_through_wraparounds():
    # 7 slots per env, 40 env steps: the ring wraps 5 times over episodes of lengths 1 .. 9
    fb, valid = _run_streams(0, num_envs=3, slots=7, steps=40)
    assert len(valid) == 3 * (7 - 3 - 1)
    _assert_samples_valid(fb, valid)


def test_frame_buffer_before_the_ring_fills():
    fb, valid = _run_streams(1, num_envs=2, slots=30, steps=12)
    assert len(valid) == 2 * 11
    _assert_samples_valid(fb, valid)


def test_break_streams_keeps_the_last_next_obs_and_cut_slots_are_never_sampled():
    # resumes restart every env's episode mid-stream, twice one env step apart. 31 slots written per env: the last
    # 12 (logical 0 .. 11) hold cut slots at 1, 4 and 6; 3 .. 10 are sampleable less the cut ones.
    fb, valid = _run_streams(2, num_envs=2, slots=12, steps=28, restarts=(20, 22, 23))
    assert int(np.asarray(fb.cut).sum()) == 2 * 3 and len(valid) == 2 * (8 - 2)
    _assert_samples_valid(fb, valid)


def test_frame_buffer_needs_more_slots_than_stacked_frames():
    with pytest.raises(UserError, match="dqn.buffer_size"):
        replay.init(replay.transition(jnp.zeros((4, *FRAME), jnp.uint8)), 8, 2)


def test_frame_buffer_bytes_are_at_most_a_sixth():
    cfg = C.apply_overrides(C.Config(), {"dqn.buffer_size": 100_000})  # 10 envs
    pong = SimpleNamespace(obs_shape=(4, 84, 84))
    obs = jax.ShapeDtypeStruct(pong.obs_shape, jnp.uint8)
    plain = jax.eval_shape(lambda o: replay.init(replay.transition(o), 100_000, 10, frames=False), obs)
    before = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(plain))
    after = replay.nbytes(cfg, pong)
    assert before == 100_000 * (2 * 4 * 84 * 84 + 4 + 4 + 1) + 8  # + pos and size
    assert after <= before / 6 and after == 100_000 * (84 * 84 + 4 + 4 + 3) + 8
    # other observations keep the plain buffer: float32 transitions
    assert replay.nbytes(cfg, SimpleNamespace(obs_shape=(4,))) == 100_000 * (2 * 4 * 4 + 4 + 4 + 1) + 8
