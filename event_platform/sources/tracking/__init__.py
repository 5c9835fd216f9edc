"""First-party tracking: the learning platform's Tracker and the `/api/tracking` collector, whose landed
group commits are typed into `tracking/events`."""

from event_platform.sources.registry import DailySchedule, EmptyDay, IdentityField, Source, SourceTable

SOURCE = Source(
    name="tracking",
    title="First-party tracking",
    tables=(
        SourceTable(
            "events",
            "The learning platform's tracking events, one row per uuid, by the day the "
            "collector received them.",
            event_time="time",
        ),
    ),
    identity=(IdentityField("anon_username", "user"),),
    schedule=DailySchedule(
        cron="15 0 * * *",
        fresh_by="15 2 * * *",
        why="the collector lands events as they are POSTed; a quarter past midnight closes day D's last file "
        "(its sensor also picks landed files up during the day).",
    ),
    empty_day=EmptyDay(
        possible=True,
        meaning="the LMS had no learners that day, or the collector received nothing: before trusting it as "
        "a quiet day, check the collector's log and that the LMS's Tracker reaches TRACKING_COLLECTOR_URL.",
    ),
    settings="event_platform.sources.tracking.settings:TrackingSettings",
    sandbox="event_platform.sandbox.tracking:emulate",
)
