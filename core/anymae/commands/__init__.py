"""The ``anymae`` commands: one table, listed by ``anymae --help``.

Each core command is named here with a one-line help and the function that runs it, given as an import path so that
listing commands imports nothing heavy; a plugin adds its own through ``registry.add_command`` in its
``anymae_register`` hook. A command is a function ``run(argv: list[str]) -> int`` (the arguments after its name; the
return value is the exit status).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CORE_COMMANDS", "Command"]


@dataclass(frozen=True)
class Command:
    """A subcommand of ``anymae``.

    Args:
        name: what follows ``anymae`` on the command line.
        help: one line for ``anymae --help``.
        run: the function, or its import path ``"package.module:function"`` (imported when the command runs).
        owner: the plugin that registered it (``"anymae"`` for the core's).
    """

    name: str
    help: str
    run: Callable[[list[str]], int] | str
    owner: str = "anymae"

    def load(self) -> Callable[[list[str]], int]:
        if not isinstance(self.run, str):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)


CORE_COMMANDS: tuple[Command, ...] = (
    Command("fit", "pretrain a masked autoencoder from a YAML config (LightningCLI)", "anymae.commands.fit:fit"),
    Command("validate", "validation loss of a model on a data module (LightningCLI)", "anymae.commands.fit:validate"),
    Command("test", "test loop of a model on a data module (LightningCLI)", "anymae.commands.fit:test"),
    Command("predict", "predict loop of a model on a data module (LightningCLI)", "anymae.commands.fit:predict"),
    Command("plugins", "list installed plugins, their components and commands", "anymae.commands.plugins:run"),
    Command("masks", "draw a masker's masks on a token grid to a PNG", "anymae.commands.masks:run"),
    Command("knn", "k-NN accuracy of a pretrained encoder's frozen features", "anymae.commands.evaluate:knn"),
    Command("probe", "linear probe on a pretrained encoder's frozen features", "anymae.commands.evaluate:probe"),
    Command("finetune", "fine-tune a pretrained encoder end to end", "anymae.commands.evaluate:finetune"),
    Command("export", "write a pretrained encoder as safetensors (and other formats)", "anymae.commands.export:run"),
    Command("table", "pretrained vs random-init scores over a suite of data sets", "anymae.commands.table:run"),
)
