"""Frame strips: for each clip, three rows of frames, ``input | masked input | reconstruction``, written as PNG
into the run's log directory every ``every_n_epochs`` epochs and at the end of fit; optionally an animated GIF of
the same three panels side by side."""

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import INVERSE, RAW_VALUES, MaskedAutoencoder, PeriodicFigure, validated

__all__ = ["FrameStrips", "save_frame_strips"]


def _panels(clips: dict[str, Tensor], max_frames: int) -> Tensor:
    """``[B, 3, T', C, H, W]`` in [0, 1]: input, masked (hidden tubelets gray), reconstruction, each clip scaled by
    its input's range; at most ``max_frames`` frames, evenly spaced."""
    original = clips["input"].float()  # [B, C, T, H, W]
    frames = original.shape[2]
    keep = torch.linspace(0, frames - 1, min(max_frames, frames)).round().long()
    low = original.amin(dim=(1, 2, 3, 4), keepdim=True)
    span = (original.amax(dim=(1, 2, 3, 4), keepdim=True) - low).clamp_min(1e-6)
    gray = (low + 0.5 * span).expand_as(original)
    masked = torch.where(clips["hidden"] > 0.5, gray, clips["masked"].float())
    rows = torch.stack([original, masked, clips["reconstruction"].float()], dim=1)  # [B, 3, C, T, H, W]
    rows = ((rows - low[:, None]) / span[:, None]).clamp(0, 1)[:, :, :, keep]
    if rows.shape[2] not in (1, 3):  # other channel counts: the first three
        rows = rows[:, :, :3]
    return rows.transpose(2, 3)  # [B, 3, T', C, H, W]


def save_frame_strips(clips: dict[str, Tensor], path: str | Path, max_frames: int = 8, gif: bool = False) -> Path:
    """Write ``clips["input" | "masked" | "reconstruction" | "hidden"]`` (``[B, C, T, H, W]``, as
    :meth:`anymae.MaskedAutoencoder.reconstruct` returns them) as a PNG of frame strips, three rows per clip; with
    ``gif``, also ``path`` with a ``.gif`` suffix, the three panels side by side, one GIF frame per clip frame."""
    from torchvision.utils import make_grid, save_image

    panels = _panels(clips, max_frames)
    frames = panels.shape[2]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(panels.flatten(0, 2), path, nrow=frames, padding=2, pad_value=1.0)
    if gif:
        from PIL import Image

        pictures = []
        for frame in range(frames):  # a GIF is a list of pictures: one per frame, not per sample
            grid = make_grid(panels[:, :, frame].flatten(0, 1), nrow=3, padding=2, pad_value=1.0)
            array = (grid * 255).round().byte().permute(1, 2, 0)
            pictures.append(Image.fromarray(array.expand(-1, -1, 3).numpy() if array.shape[-1] == 1 else array.numpy()))
        pictures[0].save(path.with_suffix(".gif"), save_all=True, append_images=pictures[1:], duration=250, loop=0)
    return path


class FrameStrips(PeriodicFigure):
    """Writes ``frames/epoch=NNNN.png`` every ``every_n_epochs`` epochs and ``frames/final.png`` when fit ends, under
    the trainer's log directory, from a fixed validation batch and a fixed masking seed.

    Args:
        every_n_epochs: period in epochs (0: only at the end of fit).
        num_videos: clips drawn (three rows each).
        max_frames: frames shown per row, evenly spaced over the clip.
        gif: also write an animated GIF beside each PNG.
        seed: masking seed, so successive figures show the same masks.
    """

    folder, label = "frames", "frame strips"
    drawings: ClassVar[Mapping[str, frozenset[str]]] = {RAW_VALUES: frozenset({INVERSE})}

    @validated
    def __init__(
        self,
        every_n_epochs: NonNegativeInt = 5,
        num_videos: PositiveInt = 4,
        max_frames: PositiveInt = 8,
        gif: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, num_videos, seed)
        self.max_frames, self.gif = max_frames, gif

    def draw(self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator, path: Path) -> Path:
        clips = module.reconstruct(batch, generator=generator)
        return save_frame_strips({k: v.cpu() for k, v in clips.items()}, path, self.max_frames, self.gif)
