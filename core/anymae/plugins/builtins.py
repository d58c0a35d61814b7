"""The core's own components and commands, registered like a plugin's (owner ``anymae``): commands by import path
and components imported inside their hook, so reading the command table imports neither torch nor Lightning."""

from __future__ import annotations

from .hookspecs import hookimpl
from .registry import Registry, kind_of

#: name, help line, and the function that runs it (imported only when the command runs)
COMMANDS = (
    ("fit", "pretrain a masked autoencoder from a YAML config (LightningCLI)", "anymae.cli.fit:fit"),
    ("validate", "validation loss of a model on a data module (LightningCLI)", "anymae.cli.fit:validate"),
    ("test", "test loop of a model on a data module (LightningCLI)", "anymae.cli.fit:test"),
    ("predict", "predict loop of a model on a data module (LightningCLI)", "anymae.cli.fit:predict"),
    ("plugins", "list installed plugins, their components and commands", "anymae.cli.plugins:run"),
    ("masks", "draw a masker's masks on a token grid to a PNG", "anymae.cli.masks:run"),
    ("knn", "k-NN accuracy of a pretrained encoder's frozen features", "anymae.cli.evaluate:knn"),
    ("probe", "linear probe on a pretrained encoder's frozen features", "anymae.cli.evaluate:probe"),
    ("finetune", "fine-tune a pretrained encoder end to end", "anymae.cli.evaluate:finetune"),
    ("retrieval", "cross-modal retrieval recall@k of a multi-modal encoder", "anymae.cli.evaluate:retrieval"),
    ("export", "write a pretrained encoder as safetensors (and other formats)", "anymae.cli.export:run"),
    ("convert", "a published checkpoint (MAE, HuggingFace, ...) as an anymae folder", "anymae.cli.convert:run"),
    ("embed", "features of every sample of a data module, from any checkpoint, as .npz", "anymae.cli.embed:run"),
    ("table", "pretrained vs random-init scores over a suite of data sets", "anymae.cli.table:run"),
    ("tune", "search pretraining recipes for your data (Optuna), scored on carved validation", "anymae.cli.tune:run"),
    ("stats", "mean and standard deviation of a data module's samples, for its normalisation", "anymae.cli.stats:run"),
    ("shard", "write a data module's samples as streaming shards (litdata)", "anymae.cli.shard:run"),
    ("report", "one self-contained HTML page of a run: losses, figures, masks, scores", "anymae.cli.report:run"),
)


#: Registered, and listed by ``anymae plugins``, first and in this order; the rest of each kind follow by name. The
#: original MAE's parts and the decoder variant the README introduces next (not every component: those are derived).
FIRST = ("RandomMasker", "ViTEncoder", "MAEDecoder", "WindowDecoder", "PatchTarget", "SinCosPositionEmbedding")


@hookimpl
def anymae_commands(registry: Registry) -> None:
    for name, help_line, run in COMMANDS:
        registry.add_command(name, run, help=help_line)


def _concrete(cls: type) -> bool:
    """No abstract method left (also on classes without ``ABCMeta``, as Lightning's callbacks): bases that plugins
    and users subclass (``Masker``, ``FolderDataModule``, ``PeriodicFigure``) are not components to name."""
    return not any(getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in dir(cls))


@hookimpl
def anymae_register(registry: Registry) -> None:
    """Every concrete component class anymae exports: a new one is registered by exporting it."""
    import anymae

    order = sorted(anymae.__all__, key=lambda name: (FIRST.index(name) if name in FIRST else len(FIRST), name))
    exported = [getattr(anymae, name) for name in order]
    registry.add(*(obj for obj in exported if kind_of(obj) is not None and _concrete(obj)))
