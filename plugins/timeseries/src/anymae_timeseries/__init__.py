"""anymae-timeseries: series and trajectories for anymae (patch tokenizer, forecasting by masking, trajectory target,
UCR/UEA and file data, plots). Names below are public API."""

from anymae.lazy import lazy_exports

__version__ = "0.3.0"  # released with anymae 0.3.0 (pyproject.toml reads it)

# imported on first use: loading the plugin (as `anymae --help` does) imports none of them
EXPORTS = {
    ".augment": ["augment_series"],
    ".data": [
        "AeonDataModule",
        "SeriesFileDataModule",
        "TrajectoryDataModule",
        "interpolate_missing",
        "read_rows",
        "read_series",
        "resample",
    ],
    ".forecast": ["ForecastMetrics", "forecast_errors"],
    ".masking": ["ForecastMasker"],
    ".targets": ["TrajectoryTarget"],
    ".tokenizers": ["SeriesPatchTokenizer"],
    ".viz": ["SeriesPlot", "save_series_plot"],
}
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"__version__"})
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
