"""How the bench times a pure-JAX training program, the same way for every reference (re-implemented or real)."""

from __future__ import annotations

import time
from collections.abc import Callable


def time_fresh(build: Callable) -> tuple[object, dict]:
    """(output, timings) of `fn(args)` where `build()` returns a fresh (jitted fn, args): compile_seconds (lower and
    compile a fresh build), run_seconds (one call of that executable) and wall_seconds (the first call of another
    fresh build: trace, compile and run, what a user waits). A fresh build each time means no jit cache hits."""
    import jax

    fn, args = build()
    t0 = time.perf_counter()
    compiled = fn.lower(args).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(args))
    run_seconds = time.perf_counter() - t0
    fn, args = build()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(args))
    wall_seconds = time.perf_counter() - t0
    return out, {"compile_seconds": compile_seconds, "run_seconds": run_seconds, "wall_seconds": wall_seconds}
