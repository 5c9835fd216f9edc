"""Amplitude: raw event exports (a ZIP of gzipped hourly JSON files) from its Export API, landed as
received and typed into `amplitude/events`."""

from event_platform.sources.registry import DailySchedule, EmptyDay, IdentityField, Source, SourceTable

SOURCE = Source(
    name="amplitude",
    title="Amplitude",
    tables=(
        SourceTable(
            "events",
            "Amplitude's exported events, one row per uuid, by the day Amplitude stored them (`date`).",
            event_time="event_time",
        ),
    ),
    identity=(IdentityField("user_id", "user"), IdentityField("device_id", "device")),
    schedule=DailySchedule(
        cron="30 3 * * *",
        fresh_by="30 5 * * *",
        why="the Export API serves an hour about 2 hours after Amplitude received it, so day D is complete "
        "at D+1 02:00 UTC; 03:30 leaves a margin.",
    ),
    empty_day=EmptyDay(
        possible=False,
        meaning="a project with traffic always exports events, so the key pair belongs to another project or "
        "region (AMPLITUDE_REGION), or the project received nothing that day; fix the settings and "
        "re-materialize amplitude/raw_export and amplitude/events for the day.",
    ),
    settings="event_platform.sources.amplitude.settings:AmplitudeSettings",
    sandbox="event_platform.sandbox.amplitude:emulate",
)
