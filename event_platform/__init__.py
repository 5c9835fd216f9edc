"""event-platform: product-analytics events from four sources, landed and joined under Dagster."""

import os

# pyarrow's default allocator (mimalloc) keeps memory it has freed: DuckDB's scans of our Arrow datasets
# peaked 0.7 GB above DuckDB's own memory_limit with it, and the Amplitude ingest 0.1 GB higher, at the
# same speed (benchmarks/README). Arrow reads this once, when pyarrow loads, so it is set before any
# module of ours imports pyarrow; processes started from ours inherit it. An explicit setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
