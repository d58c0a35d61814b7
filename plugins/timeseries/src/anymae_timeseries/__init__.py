"""anymae-timeseries: series and trajectories for anymae (patch tokenizer, forecasting by masking, trajectory target,
UCR/UEA and file data, plots). Names below are public API."""

from .data import AeonDataModule, SeriesFileDataModule, TrajectoryDataModule, interpolate_missing, read_series
from .forecast import ForecastMetrics, forecast_errors
from .masking import ForecastMasker
from .targets import TrajectoryTarget
from .tokenizers import SeriesPatchTokenizer
from .viz import SeriesPlot, save_series_plot

__version__ = "0.2.0"

__all__ = [
    "AeonDataModule",
    "ForecastMasker",
    "ForecastMetrics",
    "SeriesFileDataModule",
    "SeriesPatchTokenizer",
    "SeriesPlot",
    "TrajectoryDataModule",
    "TrajectoryTarget",
    "__version__",
    "forecast_errors",
    "interpolate_missing",
    "read_series",
    "save_series_plot",
]
