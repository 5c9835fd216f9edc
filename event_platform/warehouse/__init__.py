"""The warehouse's models and statistics as plain Python over Arrow and DuckDB (no Dagster)."""
