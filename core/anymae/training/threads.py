"""CPU threads: a warning when this process's torch threads and the jobs already running want more cores than the
machine has.

Each torch process starts one intra-op thread per core; two such jobs on one machine oversubscribe it, and the
threads then wait for each other (two processes of 2 threads each on 2 cores ran 5x slower than with one thread
each). :func:`warn_if_oversubscribed` runs at the start of ``anymae fit`` and of the protocol commands.
"""

import os
import time
import warnings

import torch

__all__ = ["warn_if_oversubscribed"]

#: load (runnable processes, averaged over a minute) of other jobs above the free cores before warning: load
#: averages are noisy, and a job that ended a few seconds ago still counts in them
MARGIN = 1.0

_warned = False
_started = time.monotonic()  # about when this process started (the CLI imports this module early)


def _process_age() -> float:
    """Seconds since this process started: Linux's ``/proc`` says; elsewhere, since this module was imported."""
    try:
        with open("/proc/self/stat") as handle:
            started = int(handle.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as handle:
            return float(handle.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _started


def own_load() -> float:
    """The cores this process has kept busy on average since it started (its CPU time over the time since): its own
    share of the load average, which is not another job's (``anymae tune`` pretrains one recipe after another)."""
    age = _process_age()
    return time.process_time() / age if age > 0.5 else 0.0


def warn_if_oversubscribed(margin: float = MARGIN) -> bool:
    """Warn (one ``UserWarning`` per process) when this process runs more than one torch thread and the 1-minute load
    average of other jobs (the load less this process's own, :func:`own_load`) plus those threads exceeds the
    machine's cores by more than ``margin``: other jobs already use the cores.
    Returns whether it warned now. Platforms without ``os.getloadavg`` (Windows) are never warned."""
    global _warned
    threads = torch.get_num_threads()
    if _warned or threads <= 1:
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no getloadavg (Windows), or the load cannot be read
        return False
    cores = os.cpu_count() or 1
    others = max(0.0, load - min(own_load(), threads))
    if others + threads <= cores + margin:
        return False
    _warned = True
    warnings.warn(
        f"the machine's load is {load:.1f} (1-minute average) on {cores} cores and this process runs {threads} torch "
        "threads: the cores are oversubscribed, which can make every job several times slower. Give each job fewer "
        "threads (OMP_NUM_THREADS=1 in its environment, or torch.set_num_threads(1)), or run one job at a time",
        UserWarning,
        stacklevel=2,
    )
    return True
