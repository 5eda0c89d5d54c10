"""Import rlx before any test imports jax, so the test process sees the same XLA devices as the CLI
(rlx exposes each CPU core as a device; that can only happen before jax is imported). Without this,
the outcome of a multi-seed run depended on which test file happened to import jax first."""

import pytest

import rlx  # noqa: F401


@pytest.fixture(autouse=True)
def few_bootstrap_reps(monkeypatch):
    """rliable's bootstraps loop over their replications in Python (2000: about 0.4 s per summary); the tests
    check wiring and agreement with rliable, not interval widths. Subprocesses (rlx sweep, submitit jobs) inherit
    it."""
    monkeypatch.setenv("RLX_BOOTSTRAP_REPS", "100")


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A single-node Slurm cluster (tests/slurm_cluster.py) for the session: yields the environment variables
    that point commands at it, and stops it at the end."""
    import os

    import slurm_cluster

    d = tmp_path_factory.mktemp("slurm")
    try:
        env = slurm_cluster.start(d)
    except slurm_cluster.Unavailable as e:
        if os.environ.get("RLX_SKIP_SLURM") == "1":
            pytest.skip(f"no Slurm: {e}")
        pytest.fail(f"no Slurm for the cluster tests: {e}. Set RLX_SKIP_SLURM=1 to skip them.")
    yield env
    slurm_cluster.stop(d)
