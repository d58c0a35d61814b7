"""Point clouds to PNG: for a few validation clouds, the input, what the encoder saw, and that with the hidden part as
the model reconstructs it (red), drawn with matplotlib. A model whose target predicts point groups
(``neighborhoods``: Point-MAE's ChamferTarget) shows points; one that predicts voxel values (``raw_values`` of a
tokenizer that provides ``voxel_centers``: voxel MAE) shows the centres of occupied voxels."""

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import NonNegativeInt, PositiveInt
from torch import Tensor

from anymae import RAW_VALUES, MAEOutput, MaskedAutoencoder, PeriodicFigure, gather_tokens, save_matplotlib, validated

__all__ = ["PointCloudGrid", "save_point_cloud_grid"]


def save_point_cloud_grid(rows: list[dict[str, Tensor]], path: str | Path) -> Path:
    """Each row a dict of titled clouds ``{title: [P, 3]}`` (hidden reconstructed points may be a second colour
    under the key ``"<title>:hidden"``); one subplot per cloud, three views per row."""
    titles = [t for t in rows[0] if not t.endswith(":hidden")]

    def draw(figure) -> None:
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

    return save_matplotlib(draw, path, figsize=(3 * len(titles), 3 * len(rows)))


class PointCloudGrid(PeriodicFigure):
    """Writes ``pointclouds/epoch=NNNN.png`` every ``every_n_epochs`` and ``pointclouds/final.png`` at the end of
    fit, from a fixed validation batch and masking seed (for ``ChamferTarget`` or ``OccupancyTarget`` models).

    Args:
        every_n_epochs: period (0: only at the end).
        num_clouds: rows.
        seed: masking seed.
    """

    folder, label = "pointclouds", "point clouds"
    drawings: ClassVar[Mapping[str, frozenset[str]]] = {
        "neighborhoods": frozenset({"neighborhoods"}),
        RAW_VALUES: frozenset({"voxel_centers"}),
    }

    @validated
    def __init__(self, every_n_epochs: NonNegativeInt = 5, num_clouds: PositiveInt = 4, seed: int = 0) -> None:
        super().__init__(every_n_epochs, num_clouds, seed)

    def draw(self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator, path: Path) -> Path:
        return save_point_cloud_grid(self.rows(module, batch, generator), path)

    def rows(
        self, module: MaskedAutoencoder, batch: dict[str, Tensor], generator: torch.Generator
    ) -> list[dict[str, Tensor]]:
        out = module(batch, generator=generator, needs=self.needs)
        if module.target.predicts == "neighborhoods":
            return self._group_rows(out)
        return self._voxel_rows(module, out)

    @staticmethod
    def _group_rows(out: MAEOutput) -> list[dict[str, Tensor]]:
        centres, groups = out.tokens.layout.coords, out.tokens.provided["neighborhoods"]
        absolute = groups + centres.unsqueeze(2)  # [B, G, k, 3]
        visible = gather_tokens(absolute.flatten(2), out.mask.ids_keep).unflatten(-1, (-1, 3))
        hidden_centres = gather_tokens(centres, out.mask.ids_decode)
        predicted = out.pred.float().unflatten(-1, (-1, 3)) + hidden_centres.unsqueeze(2)
        return [
            {
                "input": absolute[b].flatten(0, 1),  # every grouped point
                "visible": visible[b].flatten(0, 1),
                "reconstruction": visible[b].flatten(0, 1),
                "reconstruction:hidden": predicted[b].flatten(0, 1),
            }
            for b in range(len(centres))
        ]

    @staticmethod
    def _voxel_rows(module: MaskedAutoencoder, out: MAEOutput) -> list[dict[str, Tensor]]:
        """Centres of the occupied voxels: of the input, of the visible patches, and predicted in hidden ones."""
        tokens, spec = out.tokens, out.mask
        values, centres = tokens.tokens, tokens.provided["voxel_centers"]  # [B, N, V], [B, N, V, 3]
        occupied_value = values[values > 0].min() if bool((values > 0).any()) else values.new_tensor(1.0)
        predicted = module.target.to_tokens(out.pred, tokens, spec).float()
        decoded = torch.zeros_like(values, dtype=torch.bool).scatter(
            1, spec.ids_decode[..., None].expand(-1, -1, values.shape[-1]), predicted > occupied_value / 2
        )
        hidden = spec.mask[..., None]
        occupied = {
            "input": values > 0,
            "visible": (values > 0) & ~hidden,
            "reconstruction:hidden": decoded & hidden,
        }
        return [
            {
                "input": centres[b][occupied["input"][b]],
                "visible": centres[b][occupied["visible"][b]],
                "reconstruction": centres[b][occupied["visible"][b]],
                "reconstruction:hidden": centres[b][occupied["reconstruction:hidden"][b]],
            }
            for b in range(tokens.batch_size)
        ]
