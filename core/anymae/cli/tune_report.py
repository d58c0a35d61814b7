"""What ``anymae tune`` writes after every trial: ``trials.csv`` and ``trials.md`` (every trial, its settings, score,
pruning and minutes), ``trials.png`` (score per trial, best so far) and ``best.yaml`` (the pretraining config with the
best recipe)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import yaml

from .tune_space import Param, apply

__all__ = ["short", "write_outputs"]


def short(key: str) -> str:
    """A setting's column name: its key without the ``init_args`` levels."""
    return key.replace(".init_args", "")


def write_outputs(
    out: Path, space: list[Param], parsed: dict[str, Any], config: Path, score: str, trials: list[Any]
) -> None:
    """The study's files in ``out`` from its ``trials`` (Optuna's frozen trials); ``score`` says what a score is."""
    import optuna

    complete_state = optuna.trial.TrialState.COMPLETE
    rows = []
    for t in trials:
        settings = {p.key: p.decode(t.params[p.key]) for p in space if p.key in t.params}
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "score": round(t.value, 4) if t.state == complete_state and t.value is not None else "",
                "minutes": t.user_attrs.get("minutes", t.user_attrs.get("pretrain_min", "")),
                "note": t.user_attrs.get("stopped", t.user_attrs.get("error", "")),
                "rungs": " ".join(f"{v:.3f}" for _, v in sorted(t.intermediate_values.items())),
                **{short(k): json.dumps(v) if isinstance(v, list) else v for k, v in settings.items()},
            }
        )
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with (out / "trials.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    complete = [t for t in trials if t.state == complete_state and t.value is not None and math.isfinite(t.value)]
    best = max(complete, key=lambda t: t.value) if complete else None
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    for row in rows:
        mark = " (best)" if best is not None and row["trial"] == best.number else ""
        lines.append("| " + " | ".join(f"{row.get(f, '')}{mark if f == 'score' else ''}" for f in fields) + " |")
    (out / "trials.md").write_text("\n".join(lines) + "\n")
    if best is not None:
        settings = {p.key: p.decode(best.params[p.key]) for p in space if p.key in best.params}
        header = (
            f"# anymae tune: the best of {len(complete)} recipes (trial {best.number}, {score} {best.value:.4f})\n"
            f"# from {config}, with {', '.join(f'{k}={v}' for k, v in settings.items()) or 'no change'}\n"
            f"# its encoder: {best.user_attrs.get('checkpoint', '(not recorded)')}\n"
        )
        (out / "best.yaml").write_text(header + yaml.safe_dump(apply(parsed, settings), sort_keys=False))
    _plot(trials, out / "trials.png", score)


def _plot(trials: list[Any], path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    complete, pruned_state = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED
    done = [(t.number, t.value) for t in trials if t.state == complete and t.value is not None]
    pruned = [
        (t.number, t.intermediate_values[t.last_step])
        for t in trials
        if t.state == pruned_state and t.intermediate_values
    ]
    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    if done:
        axes.scatter(*zip(*done, strict=True), label="trial", color="tab:blue")
        best, line = -math.inf, []
        for number, value in done:
            best = max(best, value)
            line.append((number, best))
        axes.step(*zip(*line, strict=True), where="post", label="best so far", color="tab:orange")
    if pruned:
        axes.scatter(*zip(*pruned, strict=True), marker="x", label="pruned (last rung)", color="tab:gray")
    axes.set_xlabel("trial")
    axes.set_ylabel(label[:60])
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
