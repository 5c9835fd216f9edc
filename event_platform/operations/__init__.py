"""Operating the platform: alert delivery, following backfills (no Dagster definitions)."""
