"""``anymae tune``: search pretraining recipes for your own data, each scored on a validation split carved from the
training split, with Optuna.

    anymae tune --config examples/image/mae_tiny_digits.yaml --protocol examples/image/knn_digits.yaml --budget 10m

Each trial is a recipe: the pretraining config with a few settings changed (mask ratio, schedule length, learning
rate, encoder width and depth, patch size, augmentation strength; :mod:`anymae.cli.tune_space`, or ``--space``). The
trial pretrains it, then runs the protocol config (``knn``, ``probe`` or ``finetune``) on its encoder with
``--labels`` labels per class, scored on the training examples that were not drawn (``FewLabels``'
``carve_validation``): the split a user reports on is never looked at. Optuna's TPE sampler proposes the next recipe
from the scores so far; the first trial is the config's own recipe, so the best is never worse than it on the carved
split (only the budget stops that trial, never ``--trial-limit``). During pretraining each trial is scored
``--rungs`` times (one seed; at 1/3 and 2/3 of its schedule by default) and Optuna's median pruner stops one that
trails the trials before it at the same share of their schedules.

The study lives in ``<out>/study.journal`` (Optuna's journal file): run the same command again to resume it (a trial
cut short by the budget or an interruption runs again first). After every trial ``<out>`` holds ``trials.csv`` and
``trials.md`` (every trial, its settings, score, pruning and minutes), ``trials.png`` (score per trial, best so far)
and ``best.yaml`` (the pretraining config with the best recipe), to pretrain with ``anymae fit --config
<out>/best.yaml``. The budget is wall-clock time for this run: no trial starts after it, and a running trial stops at
it; trials run one at a time in this process, each on one device (a config's ``devices`` and DDP are for the
pretraining of the chosen recipe, afterwards). A recipe whose pretraining takes longer than ``--trial-limit`` (a
third of the budget by default: a wide, deep, long recipe can cost 20 of the config's own) is stopped and recorded
as pruned; the config's own recipe is the reference and runs whole.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import torch

from ..config import ConfigError
from ..errors import RunStopped
from .errors import read_yaml
from .evaluate import run_protocol
from .fit import AnymaeCLI
from .parser import command_parser
from .tune_report import short, write_outputs
from .tune_space import Param, config_value, default_space, grid_size, read_space

if TYPE_CHECKING:
    import optuna

__all__ = ["parse_budget", "run", "tune"]

# every trial runs in this process, on one device: a DDP run would start this study again in every process
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false", "--trainer.devices", "1"]
PROTOCOLS = ("knn", "probe", "finetune")


def parse_budget(text: str) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1.5h"`` or a bare number of minutes."""
    found = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", text)
    if not found:
        raise ConfigError(f"tune --budget: expected e.g. 90s, 10m or 1.5h, got {text!r}")
    value, unit = float(found.group(1)), found.group(2) or "m"
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


class _TrialCLI(AnymaeCLI):
    """``anymae fit`` with one more callback (the trial's rungs), and no line per checkpoint (the table says)."""

    extra_callback: pl.Callback | None = None

    def after_fit(self) -> None:
        pass

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        trainer = super().instantiate_trainer(**kwargs)
        if self.extra_callback is not None:
            trainer.callbacks.append(self.extra_callback)  # type: ignore[attr-defined]  # set in Trainer.__init__
        return trainer


class _Rungs(pl.Callback):
    """Scores the encoder ``rungs`` times during pretraining (evenly spaced steps), reports each score to the trial
    and stops the run when Optuna prunes it; stops it at the deadline too. A score is reported as rung ``k`` (of
    ``rungs``), not as its step: trials of different lengths are compared at the same share of their schedule."""

    def __init__(
        self,
        trial: optuna.Trial,
        rungs: int,
        folder: Path,
        score: Callable[[Path], float],
        deadline: float,
        trial_deadline: float,
    ) -> None:
        self.trial, self.rungs, self.folder, self.score, self.deadline = trial, rungs, folder, score, deadline
        self.trial_deadline = trial_deadline
        self.too_slow = False
        self.at: dict[int, int] = {}  # step -> rung
        self.pruned_at: int | None = None
        self.out_of_time = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = int(trainer.estimated_stepping_batches)
        self.at = {total * k // (self.rungs + 1): k for k in range(1, self.rungs + 1) if total * k // (self.rungs + 1)}

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        now = time.monotonic()
        if now > self.deadline:
            self.out_of_time, trainer.should_stop = True, True
            return
        if now > self.trial_deadline:
            self.too_slow, trainer.should_stop = True, True
            return
        step = trainer.global_step
        if step not in self.at:
            return
        rung = self.at.pop(step)
        path = self.folder / f"rung-{step}.ckpt"
        trainer.save_checkpoint(path)
        value = _keeping_rng(lambda: self.score(path))
        path.unlink(missing_ok=True)
        self.trial.report(value, rung)
        if self.trial.should_prune():
            self.pruned_at, trainer.should_stop = step, True


def _keeping_rng(run: Callable[[], float]) -> float:
    """``run()`` with the random generators the pretraining draws from left as they were (a protocol seeds them)."""
    import numpy as np

    legacy = np.random  # seed_everything seeds numpy's global generator, so its state is what to keep
    states = (random.getstate(), legacy.get_state(), torch.get_rng_state())
    try:
        return run()
    finally:
        random.setstate(states[0])
        legacy.set_state(states[1])
        torch.set_rng_state(states[2])


class Study:
    """One ``anymae tune`` run: the pretraining config, the protocol, the space and the study's folder."""

    def __init__(
        self,
        config: Path,
        protocol: Path,
        command: str,
        space: list[Param],
        out: Path,
        labels: int,
        seeds: list[int],
        rungs: int,
        deadline: float,
        trial_limit: float = math.inf,
    ) -> None:
        self.config, self.protocol, self.command, self.space = config.resolve(), protocol.resolve(), command, space
        self.out, self.labels, self.seeds, self.rungs, self.deadline = out.resolve(), labels, seeds, rungs, deadline
        self.parsed = read_yaml(self.config)
        self.trial_limit = trial_limit

    # --------------------------------------------------------------------------------------------------- one trial
    def score(self, checkpoint: Path, seeds: Sequence[int]) -> float:
        """The protocol's headline metric on the carved validation split, mean over ``seeds``."""
        values = []
        for seed in seeds:
            args = ["--config", str(self.protocol), "--model.encoder.checkpoint", str(checkpoint)]
            args += ["--data.labels_per_class", str(self.labels), "--data.seed", str(seed)]
            args += [
                "--data.carve_validation",
                "true",
                "--seed_everything",
                str(seed),
                "--model.encoder.seed",
                str(seed),
            ]
            args += ["--trainer.logger", "false", "--trainer.enable_checkpointing", "false", *QUIET]
            values.append(float(run_protocol(self.command, args)["value"]))
        return statistics.mean(values)

    def pretrain(self, values: dict[str, Any], folder: Path, rungs: _Rungs | None) -> Path:
        args = ["fit", "--config", str(self.config), "--trainer.default_root_dir", str(folder)]
        args += ["--trainer.callbacks", "[]", "--trainer.logger", "false", *QUIET]
        for key, value in values.items():
            args += [f"--{key}", json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
        _TrialCLI.extra_callback = rungs
        try:
            cli = _TrialCLI(args=args)
        finally:
            _TrialCLI.extra_callback = None
        callback = cli.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if not path:
            raise ConfigError(f"{self.config}: pretraining kept no checkpoint (trainer.enable_checkpointing is off)")
        return Path(path)

    def objective(self, trial: optuna.Trial) -> float:
        import optuna

        values = {param.key: param.suggest(trial) for param in self.space}
        folder = self.out / f"trial-{trial.number:03d}"
        # the config's own recipe is what every other trial is measured against: only the budget may stop it
        limit = time.monotonic() + (math.inf if trial.user_attrs.get("own") else self.trial_limit)
        rungs = _Rungs(trial, self.rungs, folder, lambda path: self.score(path, self.seeds[:1]), self.deadline, limit)
        started = time.perf_counter()
        try:
            checkpoint = self.pretrain(values, folder, rungs)
        except (ConfigError, RunStopped, ValueError) as error:  # a recipe that cannot build or diverges
            trial.set_user_attr("error", " ".join(str(error).split())[:300])
            return math.nan  # Optuna records the trial as failed and goes on
        trial.set_user_attr("pretrain_min", round((time.perf_counter() - started) / 60, 3))
        if rungs.out_of_time:
            trial.set_user_attr("stopped", "budget")
            raise optuna.TrialPruned("the budget ran out during pretraining")
        if rungs.too_slow:
            trial.set_user_attr("stopped", f"over the trial limit ({self.trial_limit / 60:.1f} min)")
            raise optuna.TrialPruned("the recipe's pretraining ran over the trial limit")
        if rungs.pruned_at is not None:
            trial.set_user_attr("stopped", f"pruned at step {rungs.pruned_at}")
            raise optuna.TrialPruned()
        trial.set_user_attr("checkpoint", str(checkpoint))
        value = self.score(checkpoint, self.seeds)
        trial.set_user_attr("minutes", round((time.perf_counter() - started) / 60, 3))
        return value

    def write(self, study: optuna.Study, *_: Any) -> None:
        """``trials.csv``, ``trials.md``, ``trials.png`` and ``best.yaml`` from the study so far."""
        header = f"carved-validation {self.command} score with {self.labels} labels per class"
        write_outputs(self.out, self.space, self.parsed, self.config, header, study.get_trials(deepcopy=False))


def tune(study: Study, budget: float, trials: int | None, seed: int) -> optuna.Study:
    """Run (or resume) the study in ``study.out`` for ``budget`` seconds or ``trials`` more trials."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study.out.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(study.out / "study.journal")))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = optuna.create_study(
        study_name="anymae-tune",
        storage=storage,
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        load_if_exists=True,
    )
    # TPE over continuous ranges; a space of a few choices is tried exhaustively, each recipe once. A resumed run
    # seeds its sampler past the trials so far, so it does not draw the first run's recipes again.
    offset = seed + len(found.trials)
    finite = not math.isinf(grid_size(study.space))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        found.sampler = (
            optuna.samplers.BruteForceSampler(seed=offset)
            if finite
            else optuna.samplers.TPESampler(seed=offset, n_startup_trials=4)
        )
    recorded = found.user_attrs.get("space")
    keys = [p.key for p in study.space]
    if recorded is not None and recorded != keys:
        raise ConfigError(
            f"tune: {study.out} holds a study over {recorded}, not {keys}; give another --out or the same space"
        )
    found.set_user_attr("space", keys)
    if not found.trials:  # a new study: the config's own recipe first
        own = {p.key: _own_value(study.parsed, p) for p in study.space}
        params = {p.key: p.encode(own[p.key]) for p in study.space if own[p.key] is not None}
        found.enqueue_trial(params, user_attrs={"own": True})
    so_far = found.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get("again") for t in so_far}
    again = [t for t in so_far if _cut_short(t) and t.number not in rerun]
    for t in again:  # interrupted, or stopped by the last run's budget: run it again first
        if t.state == optuna.trial.TrialState.RUNNING:
            found.tell(t.number, state=optuna.trial.TrialState.FAIL)
        attrs = {"again": t.number, **({"own": True} if t.user_attrs.get("own") else {})}
        found.enqueue_trial(dict(t.params), user_attrs=attrs, skip_if_exists=False)
    tried = [t for t in found.trials if t.state == optuna.trial.TrialState.COMPLETE]
    remaining = grid_size(study.space) - len(tried)  # a space of a few choices: stop when all are tried
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        found.optimize(
            study.objective,
            n_trials=trials if trials is not None else (None if math.isinf(remaining) else max(int(remaining), 1)),
            timeout=budget,
            callbacks=[study.write],
            catch=(),
        )
    study.write(found)
    return found


def _cut_short(trial: Any) -> bool:
    """Whether a trial never got its score: killed (still running), interrupted (failed without an error of its
    recipe) or stopped by the budget."""
    import optuna

    state = optuna.trial.TrialState
    if trial.state == state.RUNNING:
        return True
    if trial.state == state.FAIL:
        return "error" not in trial.user_attrs
    return trial.state == state.PRUNED and trial.user_attrs.get("stopped") == "budget"


def _own_value(config: dict[str, Any], param: Param) -> Any:
    """The config's own value of ``param`` when the space can propose it (else ``None``: the sampler draws it)."""
    value = config_value(config, param.key)
    if value is None:
        return None
    if param.choices:
        return value if json.dumps(value) in {json.dumps(c) for c in param.choices} else None
    assert param.low is not None and param.high is not None
    return value if param.low <= value <= param.high else None


def run(argv: Sequence[str]) -> int:
    parser = command_parser(
        "tune",
        __doc__,
        epilog="Outputs: <out>/best.yaml, trials.csv, trials.md, trials.png; <out>/study.journal resumes the study.",
    )
    parser.add_argument("--config", required=True, type=Path, help="the pretraining config (anymae fit's YAML)")
    parser.add_argument("--protocol", required=True, type=Path, help="a knn, probe or finetune config scoring a recipe")
    parser.add_argument(
        "--command", choices=PROTOCOLS, help="the protocol's command (default: from its file name, knn_*.yaml...)"
    )
    parser.add_argument("--budget", default="10m", help="wall-clock time for this run: 90s, 10m, 1.5h (default 10m)")
    parser.add_argument(
        "--trial-limit",
        help="stop a proposed recipe whose pretraining runs longer (as --budget; default: a third of the budget); "
        "the config's own recipe, the first trial, is never stopped by it",
    )
    parser.add_argument("--trials", type=int, help="at most this many trials in this run (default: until the budget)")
    parser.add_argument("--labels", type=int, default=5, help="labels per class the protocol trains on (default 5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="labelled draws per score (default: 0)")
    parser.add_argument("--rungs", type=int, default=2, help="scores during pretraining, for pruning (0: none)")
    parser.add_argument("--space", type=Path, help="a YAML list of settings to search (default: from the config)")
    parser.add_argument("--out", type=Path, help="the study's folder (default anymae-tune/<config name>)")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    options = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
        import optuna
    except ImportError as error:
        raise ConfigError(f"anymae tune needs {error.name}: pip install 'anymae[tune]'") from None
    command = options.command or next((p for p in PROTOCOLS if options.protocol.name.startswith(p)), None)
    if command is None:
        parser.error(f"--command: cannot tell knn, probe or finetune from {options.protocol.name}; give --command")
    for path in (options.config, options.protocol, options.space):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
    config = read_yaml(options.config)
    space = read_space(read_yaml(options.space)) if options.space else default_space(config)
    if not space:
        raise ConfigError(f"tune: {options.config} has none of the settings a study varies by default; give --space")
    budget = parse_budget(options.budget)
    out = options.out or Path("anymae-tune") / options.config.stem
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    study = Study(
        options.config,
        options.protocol,
        command,
        space,
        out,
        options.labels,
        options.seeds,
        options.rungs,
        deadline=time.monotonic() + budget,
        trial_limit=parse_budget(options.trial_limit) if options.trial_limit else budget / 3,
    )
    print(
        f"anymae tune: {len(space)} settings ({', '.join(short(p.key) for p in space)}), budget {budget / 60:.1f} min"
    )
    found = tune(study, budget, options.trials, options.seed)
    print((study.out / "trials.md").read_text() if (study.out / "trials.md").is_file() else "no trial finished")
    finished = optuna.trial.TrialState.COMPLETE  # a pruned trial has a value too: its last rung's
    complete = [t for t in found.trials if t.state == finished and t.value is not None and math.isfinite(t.value)]
    if complete:
        best = max(complete, key=lambda t: t.value or -math.inf)
        print(
            f"best: trial {best.number}, {command} {best.value:.4f} on carved validation -> {study.out / 'best.yaml'}"
        )
        print(f"its encoder: {best.user_attrs.get('checkpoint')}")
        print(f"pretrain it again: anymae fit --config {study.out / 'best.yaml'}")
    return 0
