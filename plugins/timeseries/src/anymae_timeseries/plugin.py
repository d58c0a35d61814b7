"""Entry point of the time-series plugin (``[project.entry-points.anymae] anymae-timeseries``)."""

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    from .data import AeonDataModule, SeriesFileDataModule, TrajectoryDataModule
    from .forecast import ForecastMetrics
    from .masking import ForecastMasker
    from .targets import TrajectoryTarget
    from .tokenizers import SeriesPatchTokenizer
    from .viz import SeriesPlot

    registry.add(SeriesPatchTokenizer, TrajectoryTarget, ForecastMasker)
    registry.add(AeonDataModule, SeriesFileDataModule, TrajectoryDataModule)
    registry.add(SeriesPlot, ForecastMetrics)
