"""The warehouse's settings: where the analysts' DuckDB file lives, how much each computation may use,
and the experiment-analysis choices. Every field is optional and falls back to the environment.

| variable | meaning | default |
|---|---|---|
| `EVENT_PLATFORM_WAREHOUSE` | the analysts' DuckDB file | `./data/warehouse.duckdb` |
| `EVENT_PLATFORM_DUCKDB_MEMORY_LIMIT` | memory limit of each in-process DuckDB (it spills past it) | `2GB` |
| `EVENT_PLATFORM_DUCKDB_THREADS` | threads of each in-process DuckDB | `2` |
| `EVENT_PLATFORM_EXPERIMENT_WEIGHTS` | JSON `{experiment: {variation: weight}}` without metadata | equal |
| `EVENT_PLATFORM_METRICS_FILE` | metric and experiment definitions (YAML, see `metrics.py`) | none |
| `EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS` | conversions count this many days after the first exposure | `7` |
| `EVENT_PLATFORM_IDENTITY_LOOKBACK_DAYS` | days of identity links a day's events resolve through | `30` |
| `EVENT_PLATFORM_IDENTITY_RULES` | identity rules, see `identity.py` | the sources' shared ids |
| `EVENT_PLATFORM_EXPERIMENT_METHOD` | `sequential`; `fixed_z`, `fixed_welch` (one look) | sequential |
| `EVENT_PLATFORM_SEQUENTIAL_TUNING_UNITS` | units at which the sequential interval is narrowest | `100000` |
| `EVENT_PLATFORM_CUPED` | adjust metrics by their 14 pre-exposure days (`on`, `off`) | on |
| `EVENT_PLATFORM_EXPERIMENT_CORRECTION` | `benjamini_hochberg` (false discovery rate) or `holm` | BH |

The attribution window and the identity lookback shape the assets' partition mappings, so they are
read when the definitions load, not per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource, Failure

from event_platform import settings
from event_platform.warehouse.engine import Engine, EngineSettings
from event_platform.warehouse.inference import Correction, InferenceSettings, Method
from event_platform.warehouse.metrics import SETTING as METRICS_FILE_SETTING
from event_platform.warehouse.metrics import MetricsConfig, MetricsFileError, load_config
from event_platform.warehouse.results import ResultsSettings, parse_traffic_weights

DEFAULT_MEMORY_LIMIT = EngineSettings.memory_limit
DEFAULT_THREADS = EngineSettings.threads
DEFAULT_ATTRIBUTION_WINDOW_DAYS = 7
DEFAULT_IDENTITY_LOOKBACK_DAYS = 30
DEFAULT_TUNING_UNITS = InferenceSettings.tuning_units


def _positive_int(name: str, default: int) -> int:
    text = settings.setting(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of days, 1 or more; it is {text!r}")
    return value


def attribution_window_days() -> int:
    return _positive_int("EVENT_PLATFORM_ATTRIBUTION_WINDOW_DAYS", DEFAULT_ATTRIBUTION_WINDOW_DAYS)


def identity_lookback_days() -> int:
    return _positive_int("EVENT_PLATFORM_IDENTITY_LOOKBACK_DAYS", DEFAULT_IDENTITY_LOOKBACK_DAYS)


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
        configured = self.path or settings.setting("EVENT_PLATFORM_WAREHOUSE", settings.DEFAULT_WAREHOUSE)
        return Path(configured or settings.DEFAULT_WAREHOUSE)

    def engine(self) -> Engine:
        threads = self.threads or _positive_int("EVENT_PLATFORM_DUCKDB_THREADS", DEFAULT_THREADS)
        memory_limit = self.memory_limit or settings.setting(
            "EVENT_PLATFORM_DUCKDB_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT
        )
        return Engine(EngineSettings(memory_limit=memory_limit or DEFAULT_MEMORY_LIMIT, threads=threads))

    def metrics_config(self, window_days: int) -> MetricsConfig:
        """The metrics file, checked; a file that cannot be used fails the run with its problems listed
        (a Failure: Dagster shows the message, and retrying cannot fix a file)."""
        path = self.metrics_file or settings.setting(METRICS_FILE_SETTING)
        try:
            return load_config(path, window_days=window_days)
        except MetricsFileError as error:
            raise Failure(description=str(error), allow_retries=False) from None

    def results_settings(self, window_days: int) -> ResultsSettings:
        weights = self.traffic_weights or settings.setting("EVENT_PLATFORM_EXPERIMENT_WEIGHTS")
        return ResultsSettings(
            window_days=window_days,
            inference=InferenceSettings(
                alpha=1.0 - self.confidence,
                method=_choice(Method, "EVENT_PLATFORM_EXPERIMENT_METHOD", self.method),
                tuning_units=self.tuning_units
                or settings.positive_number("EVENT_PLATFORM_SEQUENTIAL_TUNING_UNITS", DEFAULT_TUNING_UNITS),
                correction=_choice(Correction, "EVENT_PLATFORM_EXPERIMENT_CORRECTION", self.correction),
                srm_alpha=self.srm_alpha,
            ),
            traffic_weights=parse_traffic_weights(weights),
            cuped=self.cuped if self.cuped is not None else _switch("EVENT_PLATFORM_CUPED", default=True),
        )


def _switch(name: str, default: bool) -> bool:
    text = (settings.setting(name) or "").strip().lower()
    if not text:
        return default
    if text not in ("on", "off"):
        raise ValueError(f"{name} is {text!r}; it must be on or off")
    return text == "on"


def _choice(options: type[Method] | type[Correction], name: str, given: str | None) -> Any:
    """The setting `name` as one of `options` (the first is the default); a wrong value names the choices."""
    text = given or settings.setting(name)
    if not text:
        return next(iter(options))
    try:
        return options(text.strip().lower())
    except ValueError:
        allowed = ", ".join(option.value for option in options)
        raise ValueError(f"{name} is {text!r}; it must be one of {allowed}") from None
