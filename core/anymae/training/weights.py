"""Weights from elsewhere into a model: ``MaskedAutoencoder(init_from=...)`` (``anymae fit --model.init_from``), from
an ``anymae fit`` checkpoint, an export or ``anymae convert`` folder, or a published file a plugin's
:class:`~anymae.WeightsReader` reads (whole models from such files: :mod:`anymae.training.imported`).

Only the weights are taken (never an optimiser state). Each part the file holds is loaded into the model's part of the
same name; a tensor whose shape differs is one :class:`~anymae.ConfigError` naming both shapes, except a token
embedding whose input channels differ (a 3-channel published patch embedding on N-band data), which is adapted by
timm's rule for changing a model's input channels.
"""

from pathlib import Path
from typing import cast

from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn

from ..config import ConfigError, upgrade_class_paths
from ..model.published import ImportedWeights, load_checkpoint, read_anymae_folder, read_weights
from ..model.specs import BuildContext

__all__ = ["init_weights", "read_model_weights"]

PARTS = ("tokenizer", "masker", "encoder", "decoder", "target")
TOKEN_EMBED = "encoder.token_embed.weight"


def read_model_weights(path: str | Path) -> ImportedWeights:
    """The parts' configurations and weights (our names) of any file :func:`init_weights` takes."""
    path = Path(path)
    if path.is_dir() and (path / "config.yaml").is_file():  # ours: export_encoder's or anymae convert's folder
        parts, state = read_anymae_folder(path)
        return ImportedWeights(f"the anymae folder {path}", parts, state)
    checkpoint = {} if path.is_dir() or path.suffix == ".safetensors" else load_checkpoint(path, mmap=True)
    hparams = checkpoint.get("hyper_parameters")
    if isinstance(hparams, dict) and "state_dict" in checkpoint:  # an anymae fit checkpoint
        parts = {k: v for k, v in upgrade_class_paths(hparams).items() if k in PARTS}
        return ImportedWeights(f"the anymae checkpoint {path}", parts, dict(checkpoint["state_dict"]))
    return read_weights(path)


def init_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load the weights ``path`` holds into ``model``'s parts of the same names; print (rank zero) and return one line
    each for what was loaded and what stays as initialised."""
    imported = read_model_weights(path)
    own = model.state_dict()
    load: dict[str, Tensor] = {}
    other_channels = [k for k, v in imported.state.items() if k == TOKEN_EMBED and k in own and v.shape != own[k].shape]
    kept: list[str] = []  # the prediction head of a model over other channels: it predicts other values
    for key, value in imported.state.items():
        if key not in own:
            continue  # a part the model does not have (a learned masker's networks), reported below
        if value.shape != own[key].shape:
            if other_channels and key.startswith("decoder.") and value.shape[1:] == own[key].shape[1:]:
                kept.append(key)
                continue
            value = _adapt(key, value, own[key], model)
        load[key] = value
    model.load_state_dict(load, strict=False)
    loaded = sorted({key.split(".")[0] for key in load})
    if not loaded:
        raise ConfigError(f"init_from: {path} holds no weights of this model's parts ({imported.source})")
    fresh = [p for p in PARTS if any(k.startswith(f"{p}.") for k in own) and p not in loaded]
    ignored = sorted({key.split(".")[0] for key in imported.state if key not in own})
    lines = [f"init_from: {imported.source}: {', '.join(loaded)} loaded ({len(load)} tensors)"]
    lines += [f"init_from: {', '.join(fresh)} left as initialised (not in the file)"] if fresh else []
    lines += [f"init_from: the file's {', '.join(ignored)} not used (no such part here)"] if ignored else []
    lines += [f"init_from: {', '.join(kept)} left as initialised (it predicts other channels)"] if kept else []
    lines += [f"init_from: left out of the file: {item}" for item in imported.left_out]
    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # Lightning sets it on the function, undeclared
        print("\n".join(lines))
    return lines


def _adapt(key: str, value: Tensor, own: Tensor, model: nn.Module) -> Tensor:
    """A file's tensor of another shape: a token embedding over other input channels is adapted (timm's rule, as
    ``timm.create_model(..., in_chans=N)`` adapts a pretrained patch embedding); any other is an error."""
    ctx = getattr(model, "ctx", None)  # a MaskedAutoencoder's (not imported: it imports this module)
    channels = cast(BuildContext, ctx).tokens.channels if ctx is not None else None
    if key == TOKEN_EMBED and channels and value.dim() == 2 and value.shape[0] == own.shape[0]:
        cells = own.shape[1] // channels  # values per channel in a token: our tokens are channel-last
        if own.shape[1] == cells * channels and value.shape[1] % cells == 0:
            from timm.models import adapt_input_conv

            theirs = value.shape[1] // cells
            conv = value.reshape(value.shape[0], cells, theirs).permute(0, 2, 1)[..., None]  # [D, C, cells, 1]
            adapted = adapt_input_conv(channels, conv.float(), base_chans=theirs)[..., 0]
            return adapted.permute(0, 2, 1).reshape(own.shape).to(value.dtype)
    raise ConfigError(
        f"init_from: {key} is {list(value.shape)} in the file and {list(own.shape)} in this model: build the model "
        f"with the file's sizes (anymae convert prints them), or leave init_from out"
    )
