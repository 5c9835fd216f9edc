"""The one partitioning every asset shares: UTC days, from EVENT_PLATFORM_START_DATE to yesterday."""

from dagster import DailyPartitionsDefinition

from event_platform import settings

daily_partitions = DailyPartitionsDefinition(start_date=settings.start_date(), timezone="UTC")
