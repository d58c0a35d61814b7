"""``anymae masks``: draw a few masks of any registered masker on a token grid and save them as a PNG.

    anymae masks --masker BlockMasker --grid 14x14
    anymae masks --masker TubeMasker --grid 8x14x14 --args mask_ratio=0.9
    anymae masks --masker DualMasker --grid 8x14x14 --args "masker={class_path: TubeMasker}"
    anymae masks --checkpoint lightning_logs/version_0/checkpoints/last.ckpt

With ``--checkpoint``, the masks are those the trained model's masker makes on data, which is what learned and
data-aware maskers (AdaMAE, HPM, AttMask) need: the run's validation batch when the run's ``config.yaml`` sits in the
checkpoint's version folder (LightningCLI writes it there), else the tokenizer's example batch.

Visible tokens are white, hidden tokens that the loss covers are dark, and hidden tokens the decoder does not
predict (decoder masking) are light grey. Each row is one sample; a 3-D grid shows its time steps left to right.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from torch import Tensor

from ..config import instantiate_component
from ..masking.base import Masker
from ..model.types import GridLayout, MaskSpec, TokenBatch
from ..plugins.loader import get_plugins
from .errors import read_yaml
from .parser import command_parser

if TYPE_CHECKING:
    from ..training.module import MaskedAutoencoder

__all__ = ["build_masker", "render_masks", "run"]

VISIBLE, HIDDEN, NOT_DECODED, BACKGROUND = 255, 40, 170, 128


def build_masker(name: str, args: dict) -> Masker:
    """Instantiate a masker from its registered name or class path and init arguments, as a YAML config would."""
    return instantiate_component({"class_path": name, "init_args": args}, Masker)


def token_states(spec: MaskSpec) -> Tensor:
    """``[B, N]`` pixel values: visible, hidden and in the loss, or hidden and not predicted."""
    b, n = spec.mask.shape
    in_loss = torch.zeros(b, n, dtype=torch.bool, device=spec.mask.device)
    valid = spec.decode_valid if spec.decode_valid is not None else torch.ones_like(spec.ids_decode, dtype=torch.bool)
    in_loss.scatter_(1, spec.ids_decode, valid & torch.gather(spec.mask, 1, spec.ids_decode))
    states = torch.full((b, n), VISIBLE, dtype=torch.uint8)
    states[spec.mask.cpu()] = NOT_DECODED
    states[in_loss.cpu()] = HIDDEN
    return states


def render_masks(spec: MaskSpec, shape: tuple[int, ...], cell: int = 8, gap: int = 4) -> Tensor:
    """An image ``[H, W]`` (uint8) of the masks: one row per sample, time steps side by side."""
    states = token_states(spec)
    frames = states.view(states.shape[0], *((1, 1, *shape) if len(shape) == 1 else (1, *shape)[-3:]))
    b, t, h, w = frames.shape
    pixels = frames.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)  # [B, T, h*cell, w*cell]
    canvas = torch.full((gap + b * (h * cell + gap), gap + t * (w * cell + gap)), BACKGROUND, dtype=torch.uint8)
    for i in range(b):  # a handful of samples and frames: drawing, not tensor work
        for j in range(t):
            top, left = gap + i * (h * cell + gap), gap + j * (w * cell + gap)
            canvas[top : top + h * cell, left : left + w * cell] = pixels[i, j]
    return canvas


def checkpoint_batch(path: Path, samples: int, model: "MaskedAutoencoder") -> dict[str, Tensor]:
    """``samples`` validation samples of the run that wrote ``path`` (its ``config.yaml`` names the data), or the
    tokenizer's example batch when the run's configuration is not there."""
    config_file = path.resolve().parent.parent / "config.yaml"
    if config_file.is_file():
        import lightning.pytorch as pl

        config = read_yaml(config_file)
        if isinstance(config.get("data"), dict):
            datamodule = instantiate_component(config["data"], pl.LightningDataModule)
            datamodule.setup("validate")
            batch = datamodule.on_before_batch_transfer(next(iter(datamodule.val_dataloader())), 0)
            return {k: v[:samples] if isinstance(v, Tensor) and v.dim() else v for k, v in batch.items()}
    return model.tokenizer.example_batch(samples)


def masks_of_checkpoint(path: Path, samples: int, seed: int) -> tuple[MaskSpec, tuple[int, ...], str]:
    """The masks a trained model's masker makes on data, the token grid, and the masker's name."""
    from ..training.module import MaskedAutoencoder

    model = MaskedAutoencoder.load_from_checkpoint(path, map_location="cpu").eval()
    batch = checkpoint_batch(path, samples, model)
    with torch.no_grad():
        out = model(batch, generator=torch.Generator().manual_seed(seed))
    layout = out.tokens.layout
    if not isinstance(layout, GridLayout) or not layout.dense:
        raise SystemExit(f"anymae masks: {type(model.masker).__name__}'s tokens are not on a grid; it draws grids only")
    return out.mask, tuple(layout.shape), type(model.masker).__name__


def run(argv: Sequence[str]) -> int:
    maskers = sorted(c.name for c in get_plugins().registry.of_kind("masker"))
    parser = command_parser("masks", "Draw a few masks of a masker on a token grid and save them as a PNG.")
    parser.add_argument("--masker", help=f"a registered masker ({', '.join(maskers)}) or a class path")
    parser.add_argument("--grid", help="token grid, e.g. 14x14 or 8x14x14")
    parser.add_argument(
        "--checkpoint", type=Path, help="draw the masks a trained model's masker makes on its data (learned maskers)"
    )
    parser.add_argument("--args", nargs="*", default=[], metavar="KEY=VALUE", help="init arguments (YAML values)")
    parser.add_argument("--samples", type=int, default=4, help="masks to draw")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="PNG path (default: masks-<masker>-<grid>.png)")
    options = parser.parse_args(argv)
    from PIL import Image

    if options.checkpoint is not None:
        if options.masker or options.grid:
            parser.error("--checkpoint takes the masker and the grid from the checkpoint; drop --masker and --grid")
        spec, shape, name = masks_of_checkpoint(options.checkpoint, options.samples, options.seed)
        grid = "x".join(map(str, shape))
        out = options.out or Path(f"masks-{name}-{grid}.png")
        Image.fromarray(render_masks(spec, shape).numpy(), mode="L").save(out)
        print(f"{out}: {spec.mask.shape[0]} masks of {name} from {options.checkpoint} on a {grid} grid")
        return 0
    if not options.masker or not options.grid:
        parser.error("--masker and --grid are required (or --checkpoint)")
    shape = tuple(int(n) for n in options.grid.lower().split("x"))
    init_args = {}
    for item in options.args:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--args takes KEY=VALUE pairs, got {item!r}")
        try:
            init_args[key] = yaml.safe_load(value)
        except yaml.YAMLError as error:  # a Python tag, or not YAML at all
            parser.error(f"--args {item!r}: not plain YAML data ({getattr(error, 'problem', None) or error})")
    masker = build_masker(options.masker, init_args)
    tokens = TokenBatch(torch.zeros(options.samples, int(torch.tensor(shape).prod()), 1), GridLayout(shape))
    spec = masker(tokens, generator=torch.Generator().manual_seed(options.seed))
    out = options.out or Path(f"masks-{options.masker.rsplit('.', 1)[-1]}-{options.grid}.png")
    Image.fromarray(render_masks(spec, shape).numpy(), mode="L").save(out)
    visible = spec.num_visible / tokens.num_tokens
    print(f"{out}: {options.samples} masks of {type(masker).__name__} on a {options.grid} grid, {visible:.1%} visible")
    return 0
