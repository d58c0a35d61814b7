"""CPU threads: a warning when this process's torch threads and the jobs already running want more cores than the
machine has.

Each torch process starts one intra-op thread per core; two such jobs on one machine oversubscribe it, and the
threads then wait for each other (two processes of 2 threads each on 2 cores ran 5x slower than with one thread
each). :func:`warn_if_oversubscribed` runs at the start of ``anymae fit`` and of the protocol commands.
"""

import os
import warnings

import torch

__all__ = ["warn_if_oversubscribed"]

#: load (runnable processes, averaged over a minute) above the free cores before warning: load averages are noisy,
#: and a job that ended a few seconds ago (the previous command of a script) still counts in them at about 1.5 on 2
#: cores; another job running beside this one keeps it at 2 or more
MARGIN = 1.75

_warned = False


def warn_if_oversubscribed(margin: float = MARGIN) -> bool:
    """Warn (one ``UserWarning`` per process) when this process runs more than one torch thread and the 1-minute load
    average plus those threads exceeds the machine's cores by more than ``margin``: other jobs already use the cores.
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
    if load + threads <= cores + margin:
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
