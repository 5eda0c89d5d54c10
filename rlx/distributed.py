"""One run over several processes (`--processes N`): JAX's multi-controller runtime started from a Slurm job step.

Every process runs the same Python and the same compiled programs; the seed (x cell) axis is sharded over the
devices of all of them. What changes against one process is small and lives here: starting `jax.distributed`
from Slurm's environment, building global arrays from values every process computes alike (each feeds only its
own shards), gathering results back to every host, and naming the one process that writes files (process 0;
orbax writes checkpoints through its own multi-host path). CPU processes talk through gloo.
"""

from __future__ import annotations

import os

import numpy as np

from rlx.errors import UserError


def slurm_step_tasks() -> int | None:
    """How many tasks the Slurm job step this process belongs to has (`srun -n N`); None outside a step."""
    n = os.environ.get("SLURM_STEP_NUM_TASKS")
    return int(n) if n and n.isdigit() else None


def is_primary(processes: int) -> bool:
    """Whether this process writes the run's files: the only one, or Slurm task 0 (jax.distributed takes its
    process index from SLURM_PROCID). Known before jax starts, so run directories open before any device use."""
    return processes == 1 or os.environ.get("SLURM_PROCID", "0") == "0"


def default_name(prefix: str) -> str:
    """A run name all processes agree on without talking (a timestamp could differ by a second): the Slurm job
    and step."""
    return f"{prefix}-job{os.environ.get('SLURM_JOB_ID', '0')}.{os.environ.get('SLURM_STEP_ID', '0')}"


def check(processes: int, runs: int) -> None:
    """Refuse a process count that cannot work, before anything starts: `check_layout`, and this process must be
    one of a Slurm step of exactly that many tasks."""
    check_layout(processes, runs)
    if processes == 1:
        return
    tasks = slurm_step_tasks()
    if tasks is None:
        raise UserError(f"--processes {processes} runs one program over {processes} processes that Slurm starts: "
                        f"run it as `srun -n {processes} rlx ...` (inside salloc or sbatch), or drop --processes.")
    if tasks != processes:
        raise UserError(f"--processes {processes}, but this Slurm step has {tasks} tasks; "
                        f"use --processes {tasks}, or srun -n {processes}.")


def check_layout(processes: int, runs: int) -> None:
    """The runs of a program (cells x seeds, or the seeds of every cell) must split evenly over the processes."""
    if processes < 1:
        raise UserError(f"--processes must be positive, got {processes}.")
    if runs < processes:
        raise UserError(f"--processes {processes} is more than the {runs} runs (cells x seeds) to spread over; "
                        f"use --processes {runs} or at least --seeds {processes}.")
    if runs % processes:
        raise UserError(f"the {runs} runs (cells x seeds) do not split evenly over {processes} processes; "
                        f"use a number of seeds that is a multiple of {processes}.")


def initialize(processes: int) -> None:
    """Start jax.distributed from the Slurm step's environment (coordinator: task 0's node); must run before
    anything touches a device. A no-op for one process."""
    import jax

    if processes == 1 or jax.distributed.is_initialized():  # a sweep's groups share one runtime
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()


def barrier(name: str) -> None:
    """Wait until every process got here (what process 0 wrote before is then on disk for all); a no-op alone."""
    import jax

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def put(tree, sharding):
    """Global arrays of `sharding` from host values that every process computed alike; each process transfers
    only the shards its devices hold."""
    import jax

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(one, tree)


def to_device(tree, device):
    """Every array of tree whole on one local device; with one process a device-to-device copy, with several a
    gather (a collective: all of them must call it)."""
    import jax

    return jax.device_put(tree if jax.process_count() == 1 else gather(tree), device)


def gather(tree):
    """Every (possibly multi-process) array of tree whole, as numpy, on every process. With several processes this
    is a collective: all of them must call it."""
    import jax

    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
