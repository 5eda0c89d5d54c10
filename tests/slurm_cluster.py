"""A real single-node Slurm cluster for the tests: slurmctld and slurmd on this host, state in a temp dir.

Debian's slurm-wlm is installed when missing (as root, from the package registry: about 15 s). The config is
the least a cluster needs: no authentication daemon (auth/none), no accounting, one node with this host's CPUs
in one partition ("debug"). Commands find it through SLURM_CONF, which `start` returns for the caller's
environment (subprocesses such as `rlx sweep` and sbatch inherit it).

Set RLX_SKIP_SLURM=1 to skip the Slurm tests on a machine where Slurm cannot be installed; without it, a
missing Slurm fails them, so CI cannot pass them by accident.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

PARTITION = "debug"
DAEMONS = ("slurmctld", "slurmd")

CONF = """\
ClusterName=rlxtest
SlurmctldHost={host}
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/pgid
TaskPlugin={task_plugin}
SwitchType=switch/none
ReturnToService=2
SlurmUser=root
SlurmctldPort={port}
SlurmdPort={port1}
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmdSpoolDir={d}/spool
StateSaveLocation={d}/state
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# A cancelled task gets SIGTERM, then SIGKILL after KillWait seconds (default 30: the tests would wait it out).
KillWait=2
# Finished jobs leave squeue after MinJobAge seconds.
MinJobAge=10
NodeName={host} CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


class Unavailable(Exception):
    """Slurm is not installed and cannot be installed here."""


def ensure_installed() -> None:
    """Install Debian's slurm-wlm if slurmctld is missing (needs root and apt)."""
    if all(shutil.which(d) for d in DAEMONS):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("slurmctld is missing and this is not a root Debian machine (apt-get install slurm-wlm)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    r = subprocess.run(["apt-get", "install", "-y", "-q", "slurm-wlm"], capture_output=True, text=True, env=env)
    if r.returncode != 0:  # a fresh machine may not have read the package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
        r = subprocess.run(["apt-get", "install", "-y", "-q", "slurm-wlm"], capture_output=True, text=True, env=env)
    if r.returncode != 0 or not all(shutil.which(d) for d in DAEMONS):
        raise Unavailable(f"apt-get install slurm-wlm failed: {r.stderr.strip()[-300:]}")


def _free_port_pair() -> int:
    """A port p with p and p+1 free (slurmctld and slurmd), so a stray cluster of another run cannot answer."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        with socket.socket() as s:
            try:
                s.bind(("", port + 1))
            except OSError:
                continue
        return port
    raise Unavailable("no two adjacent free ports for slurmctld and slurmd")


def start(directory: Path, cpus: int | None = None, task_plugin: str = "task/affinity") -> dict:
    """Start the cluster with its state in `directory`; returns the environment variables that point at it."""
    ensure_installed()
    d = Path(directory)
    for sub in ("spool", "state"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    port = _free_port_pair()
    mem = max(1000, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 2000)
    conf = d / "slurm.conf"
    conf.write_text(CONF.format(host=host, port=port, port1=port + 1, d=d, cpus=cpus or os.cpu_count() or 1,
                                mem=mem, partition=PARTITION, task_plugin=task_plugin))  # fmt: skip
    env = {"SLURM_CONF": str(conf)}
    full = {**os.environ, **env}
    for daemon in DAEMONS:
        subprocess.run([daemon, "-c"], check=True, env=full, capture_output=True)  # -c: a clean state
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=full, capture_output=True, text=True)
        if r.stdout.strip() == "idle":
            return env
        time.sleep(0.2)
    stop(d)
    raise RuntimeError(f"the test Slurm node never became idle; logs in {d}")


def stop(directory: Path) -> None:
    """Stop the daemons started by `start` (their pid files are in `directory`) and cancel what is left."""
    d = Path(directory)
    env = {**os.environ, "SLURM_CONF": str(d / "slurm.conf")}
    subprocess.run(["scancel", "--user", str(os.getuid())], env=env, capture_output=True)
    for daemon in DAEMONS:
        pid_file = d / f"{daemon}.pid"
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
        except (OSError, ValueError):
            pass
