"""event-platform: product-analytics events from four sources, landed and joined under Dagster."""

import os

# pyarrow's default allocator (mimalloc) keeps memory it has freed: with it, experiment_results over the
# warehouse benchmark's 10 days peaked 0.7 GB higher and the Amplitude ingest 0.1 GB higher, at the same
# speed (README, Benchmarks). Arrow reads this once, when pyarrow loads, so it is set before any module
# of ours imports pyarrow; processes started from ours inherit it. An explicit setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
