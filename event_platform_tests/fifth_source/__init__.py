"""A fifth source as someone extending the platform would add it: this folder and one registration.

A second LMS whose events name learners by `learner_id`; `test_extension.py` registers it and follows it
into the schedules, the warehouse's events and identity map, the catalog and the CLI."""

from event_platform.sources.registry import DailySchedule, EmptyDay, IdentityField, Source, SourceTable

SOURCE = Source(
    name="lms",
    title="A second LMS",
    tables=(
        SourceTable(
            "events", "The second LMS's learner events, one row per event_id.", event_time="occurred_at"
        ),
    ),
    identity=(IdentityField("learner_id", "user"),),
    schedule=DailySchedule(
        cron="0 2 * * *", fresh_by="0 4 * * *", why="its nightly export is done by 02:00."
    ),
    empty_day=EmptyDay(possible=True, meaning="nobody studied that day, or the export did not run."),
    settings="event_platform_tests.fifth_source.settings:LmsSettings",
)
