"""The oversubscription warning: once per process when other jobs already load the cores this process's torch
threads want, never on an idle machine or with one thread, and called where ``anymae fit`` and the protocols start."""

import argparse
import os
import warnings
from types import SimpleNamespace

import pytest
import torch

from anymae.training import threads


@pytest.fixture
def machine(monkeypatch):
    """A 2-core machine whose load and torch thread count the test sets; the process has not warned yet."""
    monkeypatch.setattr(threads, "_warned", False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    def set_state(load: float, torch_threads: int = 2, own: float = 0.0) -> None:
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(torch, "get_num_threads", lambda: torch_threads)
        monkeypatch.setattr(threads, "own_load", lambda: own)

    return set_state


def test_a_loaded_machine_warns_once_naming_the_load_the_cores_the_threads_and_the_fix(machine):
    machine(load=2.0)  # another job of 2 threads already runs on the 2 cores
    with pytest.warns(UserWarning, match="oversubscribed") as caught:
        assert threads.warn_if_oversubscribed() is True
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "load is 2.0" in message and "2 cores" in message and "2 torch threads" in message
    assert "OMP_NUM_THREADS=1" in message and "torch.set_num_threads" in message and "one job at a time" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        assert threads.warn_if_oversubscribed() is False


@pytest.mark.parametrize(
    ("load", "torch_threads"),
    [(0.3, 2), (1.0, 2), (6.0, 1)],
    ids=["idle", "within the margin", "one thread"],
)
def test_no_warning_when_the_cores_suffice_or_one_thread_runs(machine, load, torch_threads):
    machine(load, torch_threads)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads.warn_if_oversubscribed() is False
    machine(load=3.0)  # it checked, but did not use up its one warning
    with pytest.warns(UserWarning, match="oversubscribed"):
        threads.warn_if_oversubscribed()


def test_the_load_this_process_made_itself_is_not_another_jobs(machine):
    machine(load=2.0, own=1.9)  # a study that has pretrained for minutes: the load is its own
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads.warn_if_oversubscribed() is False
    machine(load=3.9, own=1.9)  # and another job beside it
    with pytest.warns(UserWarning, match="oversubscribed"):
        threads.warn_if_oversubscribed()


def test_a_platform_without_a_load_average_is_never_warned(machine, monkeypatch):
    machine(load=9.0)
    monkeypatch.delattr(os, "getloadavg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert threads.warn_if_oversubscribed() is False


def test_fit_and_the_protocols_check_before_they_run(monkeypatch):
    from anymae.cli import evaluate, fit

    calls = []
    monkeypatch.setattr(fit, "warn_if_oversubscribed", lambda: calls.append("fit"))
    monkeypatch.setattr(evaluate, "warn_if_oversubscribed", lambda: calls.append("protocol"))
    trainer = SimpleNamespace(fit=lambda *args, **kwargs: calls.append("trainer.fit"))
    fit.AnymaeCLI.fit(SimpleNamespace(trainer=trainer), model=None)  # type: ignore[arg-type]
    assert calls == ["fit", "trainer.fit"]
    with pytest.raises(argparse.ArgumentError):  # the arguments are refused after the check
        evaluate.protocol_rows("knn", ["--no-such-option", "1"])
    assert calls[-1] == "protocol"


def test_this_processs_own_load_is_measured_since_it_started() -> None:
    age = threads._process_age()
    assert age > 0.5  # pytest has run for a while: the process's age, not this module's
    assert 0 < threads.own_load() <= (os.cpu_count() or 1) + 0.5
