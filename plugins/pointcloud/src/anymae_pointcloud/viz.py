"""Point clouds to PNG: for a few validation clouds, the input, what the encoder saw, and that with the hidden part as
the model reconstructs it (red), drawn with matplotlib. Point groups (PointGroupTokenizer + ChamferTarget) show
points; voxel patches (VoxelPatchTokenizer + OccupancyTarget) show the centres of occupied voxels."""

from pathlib import Path

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import MAEOutput, MaskedAutoencoder, PeriodicFigure, gather_tokens, validated

from .targets import ChamferTarget, OccupancyTarget

__all__ = ["PointCloudGrid", "save_point_cloud_grid"]


def save_point_cloud_grid(rows: list[dict[str, Tensor]], path: str | Path) -> Path:
    """Each row a dict of titled clouds ``{title: [P, 3]}`` (hidden reconstructed points may be a second colour
    under the key ``"<title>:hidden"``); one subplot per cloud, three views per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = [t for t in rows[0] if not t.endswith(":hidden")]
    figure = plt.figure(figsize=(3 * len(titles), 3 * len(rows)))
    for i, row in enumerate(rows):
        for j, title in enumerate(titles):
            axis = figure.add_subplot(len(rows), len(titles), i * len(titles) + j + 1, projection="3d")
            for key, colour in ((title, "tab:blue"), (f"{title}:hidden", "tab:red")):
                if key in row and len(row[key]):
                    points = row[key].float().cpu()
                    axis.scatter(points[:, 0], points[:, 1], points[:, 2], s=1, c=colour)
            axis.set_title(title if i == 0 else "", fontsize=9)
            axis.set_axis_off()
            axis.set_box_aspect((1, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


class PointCloudGrid(PeriodicFigure):
    """Writes ``pointclouds/epoch=NNNN.png`` every ``every_n_epochs`` and ``pointclouds/final.png`` at the end of
    fit, from a fixed validation batch and masking seed (for ``ChamferTarget`` or ``OccupancyTarget`` models).

    Args:
        every_n_epochs: period (0: only at the end).
        num_clouds: rows.
        seed: masking seed.
    """

    folder, label = "pointclouds", "point clouds"

    @validated
    def __init__(self, every_n_epochs: NonNegativeInt = 5, num_clouds: PositiveInt = 4, seed: int = 0) -> None:
        super().__init__(every_n_epochs, num_clouds, seed)

    def draw(self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator, path: Path) -> Path:
        return save_point_cloud_grid(self.rows(module, batch, generator), path)

    def rows(
        self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator
    ) -> list[dict[str, Tensor]]:
        out = module(batch, generator=generator)
        if isinstance(module.target, ChamferTarget):
            return self._group_rows(module, batch, out)
        if isinstance(module.target, OccupancyTarget):
            return self._voxel_rows(module, batch, out)
        raise ValueError("PointCloudGrid draws ChamferTarget or OccupancyTarget reconstructions")

    @staticmethod
    def _group_rows(module: MaskedAutoencoder, batch: dict[str, Tensor], out: MAEOutput) -> list[dict[str, Tensor]]:
        centres, groups = out.tokens.layout.coords, out.tokens.aux["neighborhoods"]
        absolute = groups + centres.unsqueeze(2)  # [B, G, k, 3]
        visible = gather_tokens(absolute.flatten(2), out.mask.ids_keep).unflatten(-1, (-1, 3))
        hidden_centres = gather_tokens(centres, out.mask.ids_decode)
        predicted = out.pred.float().unflatten(-1, (-1, 3)) + hidden_centres.unsqueeze(2)
        return [
            {
                "input": batch[module.tokenizer.key][b],
                "visible": visible[b].flatten(0, 1),
                "reconstruction": visible[b].flatten(0, 1),
                "reconstruction:hidden": predicted[b].flatten(0, 1),
            }
            for b in range(len(centres))
        ]

    @staticmethod
    def _voxel_rows(module: MaskedAutoencoder, batch: dict[str, Tensor], out: MAEOutput) -> list[dict[str, Tensor]]:
        tokenizer, tokens, spec = module.tokenizer, out.tokens, out.mask
        occupied = (tokens.tokens > 0).float()
        hidden = spec.mask[..., None]
        index = spec.ids_decode[..., None].expand(-1, -1, occupied.shape[-1])
        predicted = torch.zeros_like(occupied).scatter(
            1, index, module.target.to_tokens(out.pred, tokens, spec).float()
        )
        grids = {
            "input": occupied,
            "visible": occupied.masked_fill(hidden, 0),
            "reconstruction:hidden": (predicted > 0).float().masked_fill(~hidden, 0),
        }
        size = tokenizer.grid_size
        centres = {k: tokenizer.to_grid(tokens.with_tokens(v)) for k, v in grids.items()}  # [B, S, S, S]
        as_points = lambda grid: (grid.nonzero().float() + 0.5) / size * 2 - 1  # noqa: E731  voxel centres
        return [
            {
                "input": as_points(centres["input"][b]),
                "visible": as_points(centres["visible"][b]),
                "reconstruction": as_points(centres["visible"][b]),
                "reconstruction:hidden": as_points(centres["reconstruction:hidden"][b]),
            }
            for b in range(tokens.batch_size)
        ]
