"""Loading the code location imports no library that only runs use: every code server, run worker and
`dagster` command loads the definitions, and would pay each such import every time (docs/architecture.md,
"What loading the code location imports"). pyarrow stays: the assets' annotations name its types.
"""

from __future__ import annotations

import subprocess
import sys

RUN_ONLY = ("duckdb", "scipy", "boto3", "botocore", "uvicorn", "starlette")
"""DuckDB (0.15 CPU-s to import), scipy (0.2), boto3 with botocore (0.08), the collector's server."""


def test_loading_the_definitions_imports_no_library_only_runs_use() -> None:
    load = (
        "import sys\n"
        "from event_platform.definitions import defs\n"
        "defs().get_repository_def()\n"
        f"print(' '.join(name for name in {RUN_ONLY!r} if name in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == [], f"Imported while loading the definitions: {loaded.stdout}"
