"""Optimizely Profile Store: track events read past its 10,000-record window, personal data
pseudonymised before anything is written."""

from event_platform.sources.registry import DailySchedule, EmptyDay, IdentityField, Source, SourceTable

SOURCE = Source(
    name="profile_store",
    title="Optimizely Profile Store",
    tables=(
        SourceTable(
            "events",
            "Profile Store track events, personal fields as keyed hashes, one row per "
            "event_key, by event day.",
            event_time="event_time",
        ),
    ),
    identity=(IdentityField("device_id", "device"),),
    schedule=DailySchedule(
        cron="0 1 * * *",
        fresh_by="0 3 * * *",
        why="TrackEvents are queryable as soon as they are tracked; an hour after midnight lets the last "
        "batches of day D arrive.",
    ),
    empty_day=EmptyDay(
        possible=False,
        meaning="the site tracks visitors every day, so the API key or PROFILE_STORE_BASE_URL points at "
        "another account or region, or tracking stopped on the site; fix it and re-materialize the day.",
    ),
    settings="event_platform.sources.profile_store.settings:ProfileStoreSettings",
    sandbox="event_platform.sandbox.profile_store:emulate",
)
