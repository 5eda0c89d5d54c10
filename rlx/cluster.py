"""The Slurm launcher of `rlx sweep --launcher slurm`: one job array, one task per unfinished compiled program.

submitit writes the sbatch script and pickles rlx.sweep.run_group with its arguments; rlx waits for the array by
polling squeue, not through submitit, whose state watcher asks sacct: on a cluster without accounting that
prints a warning on every poll and a cancelled task stays "UNKNOWN", so waiting on it never ends. Which groups
finished is read from the sweep directory (summary.json), so a rerun of the same command resumes the rest.

Settings (LauncherSettings) come from the experiment module (`Experiment(..., launcher={...})`), then from
`--set launcher.KEY=VALUE`; they shape the jobs only, never the sweep's identity in sweep.json.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

from rlx import config as C
from rlx import sweep
from rlx.errors import UserError

LAUNCHERS = ("local", "slurm", "submitit-local")
PREFIX = "launcher."  # --set keys with this prefix configure the launcher, not the runs
RESUME_HINT = "run the same command again to resume"
LOCAL_TIMEOUT_MIN = 24 * 60  # submitit-local's limit per job, as before the Slurm settings existed


@dataclass(frozen=True)
class LauncherSettings:
    """What each array task asks sbatch for. Empty strings and zeros leave the choice to the cluster."""

    noun: ClassVar[str] = "launcher setting"  # what error messages call a key of this config

    partition: str = ""  # "" = the cluster's default partition
    time_min: int = 24 * 60  # wall-clock limit per task, minutes
    cpus_per_task: int = 0  # 0 = the cluster's default (usually 1)
    gpus_per_task: int = 0
    mem_gb: float = 0.0  # memory per node; 0 = the cluster's default
    account: str = ""
    nodes: int = 1  # nodes per task; the processes of one program are spread evenly over them
    sbatch: tuple[str, ...] = ()  # more sbatch flags, e.g. "--qos=high"; a dict in an experiment module

    def check(self) -> LauncherSettings:
        """Raise UserError for impossible values, with the flag that fixes them; returns self."""
        fix = LauncherSettings()
        positive = {"time_min": "positive (minutes)", "nodes": "at least 1"}
        for key, what in positive.items():
            C.need(getattr(self, key) > 0, f"launcher.{key} must be {what}, got {getattr(self, key)}.",
                   {PREFIX + key: getattr(fix, key)})  # fmt: skip
        for key in ("cpus_per_task", "gpus_per_task", "mem_gb"):
            value = getattr(self, key)  # a NaN or infinite mem_gb is no size either
            C.need(value >= 0 and math.isfinite(value), f"launcher.{key} must be >= 0 (0 = the cluster's default), "
                   f"got {getattr(self, key)}.", {PREFIX + key: 0})  # fmt: skip
        for flag in self.sbatch:
            extra_flag(flag)
        return self


# Flags rlx or submitit set themselves: as extra sbatch flags they would contradict a setting or break the array.
OWN_FLAGS = {"partition": "partition", "time": "time_min", "cpus-per-task": "cpus_per_task",
             "gpus-per-task": "gpus_per_task", "mem": "mem_gb", "account": "account", "nodes": "nodes"}  # fmt: skip
SUBMITIT_FLAGS = ("array", "output", "error", "open-mode", "signal", "ntasks-per-node", "ntasks")


def extra_flag(flag: str) -> tuple[str, str | bool]:
    """"--qos=high" -> ("qos", "high"), "--exclusive" -> ("exclusive", True); UserError for other forms."""
    name, _, value = flag.strip().partition("=")
    key = name.lstrip("-")
    C.need(name.startswith("--") and len(key) > 1,
           f"launcher.sbatch takes long sbatch flags such as --qos=high, got {flag!r}.", {"launcher.sbatch": "--qos=high"})  # fmt: skip
    if key in OWN_FLAGS:
        raise UserError(f"launcher.sbatch {flag!r}: set it with --set launcher.{OWN_FLAGS[key]}=... instead.")
    if key in SUBMITIT_FLAGS:
        raise UserError(f"launcher.sbatch {flag!r}: rlx sets --{key} itself (one array task per program); drop it.")
    return key, value or True


def split_sets(sets: dict) -> tuple[dict, dict]:
    """--set items as (run-config overrides, launcher settings without their `launcher.` prefix)."""
    runs = {k: v for k, v in sets.items() if not k.startswith(PREFIX)}
    return runs, {k.removeprefix(PREFIX): v for k, v in sets.items() if k.startswith(PREFIX)}


def launcher_settings(module: dict, sets: dict, launcher: str, experiment: str = "") -> LauncherSettings:
    """The experiment module's launcher settings, then `--set launcher.*` over them, parsed by rlx.config's one
    parser and checked. --set launcher.* with a launcher other than slurm is refused: it would have no effect."""
    if sets and launcher != "slurm":
        keys = " ".join(f"launcher.{k}" for k in sets)
        raise UserError(f"--set {keys} configures Slurm jobs and has no effect with --launcher {launcher}; "
                        "add --launcher slurm, or drop it.")  # fmt: skip
    if not isinstance(module, dict):
        raise UserError(f"launcher= of experiment '{experiment}' must be a dict such as {{'partition': 'gpu'}}, "
                        f"got {module!r}.")  # fmt: skip
    merged = {**module, **sets}
    if isinstance(merged.get("sbatch"), dict):  # {"qos": "high"} reads better in a module than a flag list
        merged["sbatch"] = tuple(f"--{k}" if v is True else f"--{k}={v}" for k, v in merged["sbatch"].items())
    return C.apply_overrides(LauncherSettings(), merged)


# ---------------------------------------------------------------------------------------------
# What each array task asks for


def resources(s: LauncherSettings, processes: int = 1) -> dict:
    """sbatch parameters of each array task, by submitit's SlurmExecutor names; unset ones are left out."""
    if processes % s.nodes:
        raise UserError(f"{processes} process(es) per program cannot be spread evenly over launcher.nodes={s.nodes}. "
                        "Try --set launcher.nodes=1.")  # fmt: skip
    out = {"time": s.time_min, "nodes": s.nodes, "ntasks_per_node": processes // s.nodes}
    optional = {"partition": s.partition, "account": s.account, "cpus_per_task": s.cpus_per_task,
                "gpus_per_task": s.gpus_per_task, "mem": s.mem_gb and mem_text(s.mem_gb)}  # fmt: skip
    out.update({k: v for k, v in optional.items() if v})
    return out


def mem_text(gb: float) -> str:
    """sbatch's --mem value: whole gigabytes as "16G", fractions in megabytes."""
    return f"{int(gb)}G" if float(gb).is_integer() else f"{round(gb * 1024)}M"


def sbatch_flags(s: LauncherSettings, processes: int = 1) -> list[str]:
    """The #SBATCH flags rlx chooses for each task (submitit adds --array, --output, --error, --signal)."""
    own = [f"--{k.replace('_', '-')}={v}" for k, v in resources(s, processes).items()]
    return own + list(s.sbatch)


def layout(groups: list[list[int]], seeds: int, steps: list[int], s: LauncherSettings, processes: int = 1) -> list[str]:
    """`rlx show --launcher slurm`: the job array, what each task runs and what it asks sbatch for."""
    where = f"partition {s.partition}" if s.partition else "the cluster's default partition"
    lines = [f"Slurm job array: {len(groups)} task(s), one per compiled program, on {where}; "
             f"{processes} process(es) per task.",
             "each task asks for: " + " ".join(sbatch_flags(s, processes))]  # fmt: skip
    for i, (members, n) in enumerate(zip(groups, steps, strict=True)):
        lines.append(f"  task {i}: g{i}, {len(members)} cell(s) × {seeds} seed(s) = {len(members) * seeds} runs, "
                     f"{n:,} steps")  # fmt: skip
    lines.append("Finished programs are skipped when the sweep is run again; only unfinished ones are submitted.")
    return lines


# ---------------------------------------------------------------------------------------------
# The cluster: checks before submitting, submission, waiting


def slurm_command(args: list[str]) -> subprocess.CompletedProcess:
    """Run a Slurm client command; UserError if it is missing from PATH."""
    if shutil.which(args[0]) is None:
        raise UserError(f"--launcher slurm needs Slurm's {args[0]} on PATH; run rlx on the cluster's login node, "
                        "or use --launcher local.")  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True)


def check_cluster(s: LauncherSettings) -> None:
    """Before anything is written or submitted: Slurm is here, and the partition asked for exists."""
    for tool in ("sbatch", "srun", "squeue"):  # srun: submitit starts each task with it
        slurm_command([tool, "--version"])
    if not s.partition:
        return
    r = slurm_command(["sinfo", "-h", "-o", "%R"])
    if r.returncode != 0:
        raise UserError(f"sinfo failed: {one_line(r.stderr)}; is the Slurm controller reachable?")
    names = sorted(set(r.stdout.split()))
    if s.partition not in names:
        raise UserError(f"unknown Slurm partition '{s.partition}'. Partitions here: {', '.join(names)}. "
                        f"Try --set launcher.partition={names[0] if names else 'NAME'}.")  # fmt: skip


def one_line(stderr: str) -> str:
    """A Slurm command's complaint as one line, without the "sbatch: error:" prefixes and the --help hint."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("Try ")]
    return "; ".join(ln.split(": error: ", 1)[-1] for ln in lines) or "no reason given"


class Unfinished(NamedTuple):
    """A group whose array task ended without its summary.json."""

    group: int
    task: str  # the Slurm job id of its array task, e.g. 1234_0
    log: Path  # submitit's stderr log of that task

    def line(self) -> str:
        return f"g{self.group} (Slurm task {self.task}) did not finish; its log: {self.log}"


class Detached(Exception):
    """The user stopped waiting (Ctrl-C); the array keeps running on the cluster."""


def executor(sweep_dir: Path, launcher: str, s: LauncherSettings, processes: int):
    """A submitit executor writing its scripts, pickles and logs to SWEEP_DIR/submitit."""
    try:
        import submitit
    except ImportError:
        raise UserError(f"--launcher {launcher} needs submitit: pip install 'rlx[slurm]'.") from None
    folder = Path(sweep_dir) / "submitit"
    if launcher == "submitit-local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN, tasks_per_node=processes)
        return ex
    ex = submitit.SlurmExecutor(folder=folder)
    ex.update_parameters(job_name=f"rlx-{Path(sweep_dir).name}", **resources(s, processes),
                         additional_parameters=dict(extra_flag(f) for f in s.sbatch))  # fmt: skip
    return ex


def submit(ex, sweep_dir: Path, pending: list[int], devices: int | None, processes: int) -> list:
    """One array task per pending group; sbatch's refusal becomes a one-line UserError."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    # With several processes per program, submitit starts one run_group per Slurm task (jax.distributed).
    fn = functools.partial(sweep.run_group, processes=processes)
    n = len(pending)
    quiet = io.StringIO()  # submitit echoes sbatch's stderr before raising; the error below says it once
    try:
        with contextlib.redirect_stderr(quiet):
            return ex.map_array(fn, [str(sweep_dir)] * n, pending, [devices] * n)
    except (FailedJobError, FailedSubmissionError) as e:
        raise UserError(f"sbatch refused the job: {one_line(str(e))}") from None


def active_tasks(array_id: str) -> list[str] | None:
    """Ids of the array's tasks still pending or running, or None when squeue could not be asked."""
    r = subprocess.run(["squeue", "-h", "-j", array_id, "-o", "%i"], capture_output=True, text=True)
    if r.returncode != 0:
        # Finished jobs leave the controller's memory after MinJobAge; squeue then calls the id invalid.
        return [] if "Invalid job id" in r.stderr else None
    return r.stdout.split()


def wait(array_id: str, poll_s: float = 1.0, max_poll_s: float = 30.0, give_up_s: float = 600.0) -> None:
    """Block until no task of the array is pending or running. The poll interval grows with the time waited
    (about a tenth of it: seconds in a test, half a minute in a day-long sweep), so squeue is not hammered."""
    start = last_ok = time.monotonic()
    try:
        while True:
            tasks = active_tasks(array_id)
            now = time.monotonic()
            if tasks == []:
                return
            if tasks is not None:
                last_ok = now
            elif now - last_ok > give_up_s:
                raise UserError(f"squeue has not answered for {give_up_s / 60:.0f} minutes; job {array_id} may still "
                                f"run (squeue -j {array_id}); when it is done, {RESUME_HINT}.")  # fmt: skip
            time.sleep(min(max_poll_s, max(poll_s, (now - start) / 10)))
    except KeyboardInterrupt:
        raise Detached(f"stopped waiting; Slurm job {array_id} keeps running (scancel {array_id} stops it); "
                       f"when it is done, {RESUME_HINT}.") from None  # fmt: skip


def launch(sweep_dir: Path, pending: list[int], launcher: str, devices: int | None,
           settings: LauncherSettings, processes: int = 1) -> list[Unfinished]:  # fmt: skip
    """Run the pending groups as one submitit job array and wait for it; the groups that did not finish."""
    if not pending:
        return []
    ex = executor(sweep_dir, launcher, settings, processes)
    jobs = submit(ex, sweep_dir, pending, devices, processes)
    if launcher == "submitit-local":
        for job in jobs:  # local processes: submitit's own waiting works, and a failure raises with its traceback
            job.result()
        return []
    wait(jobs[0].job_id.split("_")[0])
    return [Unfinished(g, job.job_id, Path(job.paths.stderr))
            for g, job in zip(pending, jobs, strict=True) if not sweep.group_done(sweep_dir, g)]  # fmt: skip
