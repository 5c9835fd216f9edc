"""The lake's layout: one hive-style `date=YYYY-MM-DD` directory per daily partition.

<table>/date=D/                  typed Parquet, e.g. amplitude/events/date=2026-11-01/
raw/<source>/date=D/             what the vendor sent, byte-identical
quarantine/<table>/date=D/       lines that could not be typed, byte-identical
"""

from __future__ import annotations

PARTITION_KEY = "date"


def partition_path(table: str, partition_key: str) -> str:
    return f"{table.strip('/')}/{PARTITION_KEY}={partition_key}"


def raw_path(source: str, partition_key: str) -> str:
    return partition_path(f"raw/{source}", partition_key)


def quarantine_path(table: str, partition_key: str) -> str:
    return partition_path(f"quarantine/{table}", partition_key)


def partition_keys(partition_dirs: list[str]) -> list[str]:
    """The keys of `date=…` directory names, ignoring anything else."""
    prefix = f"{PARTITION_KEY}="
    return sorted(name[len(prefix) :] for name in partition_dirs if name.startswith(prefix))
