import jax
import jax.numpy as jnp
import numpy as np

from rlx import replay


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
