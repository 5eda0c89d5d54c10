"""Import rlx before any test imports jax, so the test process sees the same XLA devices as the CLI
(rlx exposes each CPU core as a device; that can only happen before jax is imported). Without this,
the outcome of a multi-seed run depended on which test file happened to import jax first."""

import rlx  # noqa: F401
