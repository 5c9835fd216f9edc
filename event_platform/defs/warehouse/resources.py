"""The warehouse's resource: where the analysts' DuckDB file lives, how much each computation may use,
and the experiment-analysis choices. Every field is optional: one left unset is the environment's
(`settings.Platform.warehouse`, `settings.Warehouse`, `settings.Experiments`), and one that is set is
checked as the variable would be.
"""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, Failure

from event_platform import settings
from event_platform.warehouse.engine import Engine, EngineSettings
from event_platform.warehouse.inference import InferenceSettings
from event_platform.warehouse.metrics import MetricsConfig, MetricsFileError, load_config
from event_platform.warehouse.results import ResultsSettings


class WarehouseResource(ConfigurableResource):
    """Builds each run's in-process DuckDB and knows where the analysts' catalog goes."""

    path: str | None = None
    memory_limit: str | None = None
    threads: int | None = None
    traffic_weights: str | None = None
    """JSON `{experiment_id: {variation_id: weight}}`; experiments not named are split equally."""
    confidence: float = 0.95
    srm_alpha: float = 0.001
    method: str | None = None
    """EVENT_PLATFORM_EXPERIMENT_METHOD: sequential (default), fixed_z or fixed_welch."""
    tuning_units: float | None = None
    """EVENT_PLATFORM_SEQUENTIAL_TUNING_UNITS: units at which the sequential interval is narrowest."""
    correction: str | None = None
    """EVENT_PLATFORM_EXPERIMENT_CORRECTION: benjamini_hochberg (default) or holm."""
    cuped: bool | None = None
    """EVENT_PLATFORM_CUPED: on (default) or off."""
    metrics_file: str | None = None
    """The metric and experiment definitions (EVENT_PLATFORM_METRICS_FILE)."""

    def warehouse_path(self) -> Path:
        return Path(self.path or settings.Platform.read().warehouse)

    def engine(self) -> Engine:
        duckdb = settings.Warehouse.read(memory_limit=self.memory_limit, threads=self.threads)
        return Engine(EngineSettings(memory_limit=duckdb.memory_limit, threads=duckdb.threads))

    def experiments(self) -> settings.Experiments:
        """The experiment settings: this resource's fields where set, else the environment's."""
        return settings.Experiments.read(
            traffic_weights=self.traffic_weights,
            metrics_file=self.metrics_file,
            method=self.method,
            tuning_units=self.tuning_units,
            correction=self.correction,
            cuped=self.cuped,
        )

    def metrics_config(self, window_days: int) -> MetricsConfig:
        """The metrics file, checked; a file that cannot be used fails the run with its problems listed
        (a Failure: Dagster shows the message, and retrying cannot fix a file)."""
        try:
            return load_config(self.experiments().metrics_file, window_days=window_days)
        except MetricsFileError as error:
            raise Failure(description=str(error), allow_retries=False) from None

    def results_settings(self, window_days: int) -> ResultsSettings:
        experiments = self.experiments()
        return ResultsSettings(
            window_days=window_days,
            inference=InferenceSettings(
                alpha=1.0 - self.confidence,
                method=experiments.method,
                tuning_units=experiments.tuning_units,
                correction=experiments.correction,
                srm_alpha=self.srm_alpha,
            ),
            traffic_weights=experiments.traffic_weights,
            cuped=experiments.cuped,
        )
