"""anymae-timeseries: series and trajectories for anymae (patch tokenizer, forecasting by masking, trajectory target,
UCR/UEA and file data, plots). Names below are public API."""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

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
    "augment_series",
    "forecast_errors",
    "interpolate_missing",
    "read_series",
    "resample",
    "save_series_plot",
]

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".augment": ["augment_series"],
        ".data": [
            "AeonDataModule",
            "SeriesFileDataModule",
            "TrajectoryDataModule",
            "interpolate_missing",
            "read_series",
            "resample",
        ],
        ".forecast": ["ForecastMetrics", "forecast_errors"],
        ".masking": ["ForecastMasker"],
        ".targets": ["TrajectoryTarget"],
        ".tokenizers": ["SeriesPatchTokenizer"],
        ".viz": ["SeriesPlot", "save_series_plot"],
    },
)
