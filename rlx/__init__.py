"""rlx: jitted, vmapped deep-RL exploration experiments on JAX."""

import os
import sys

__version__ = "0.1.0"


def _expose_cpu_cores_as_devices() -> None:
    """Let XLA see each CPU core as a device so the seed axis can be sharded across cores.

    XLA runs one program on one core; with the seed axis split over N host devices, 8 CartPole seeds
    ran 2.7x faster on 2 cores. Only possible before jax is imported; RLX_CPU_DEVICES=1 turns it off.
    GPU runs are unaffected (jax prefers the GPU devices).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "jax" in sys.modules or "xla_force_host_platform_device_count" in flags:
        return
    n = os.environ.get("RLX_CPU_DEVICES") or str(_slurm_task_cpus() or os.cpu_count() or 1)
    if n.isdigit() and int(n) > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _slurm_task_cpus() -> int | None:
    """The CPUs Slurm gave this task when it is one of several in a job step (`srun -n 2`): the whole node's
    cores are visible to each task, but they share them. None outside such a step."""
    tasks = os.environ.get("SLURM_STEP_TASKS_PER_NODE", "").split("(")[0].split(",")[0]
    if not tasks.isdigit() or int(tasks) <= 1:
        return None
    per_task = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if per_task.isdigit():
        return int(per_task)
    on_node = os.environ.get("SLURM_CPUS_ON_NODE", "")
    return max(1, int(on_node) // int(tasks)) if on_node.isdigit() else None


_expose_cpu_cores_as_devices()
