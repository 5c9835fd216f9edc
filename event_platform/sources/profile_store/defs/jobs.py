"""`forget_profile_store_person`: remove one person's Profile Store events from the vendor, the lake and the
warehouse (the steps are in `forget.py`). Launch it with config naming `email`, `email_key` (the
`pii1:` pseudonym, which keeps the address itself out of Dagster's run storage) or `device_id`.
"""

from pathlib import Path

import dagster as dg
from pydantic import Field

from event_platform import settings
from event_platform.lake.io_manager import LakeResource
from event_platform.sources.profile_store import forget
from event_platform.sources.profile_store.defs.resources import ProfileStoreResource
from event_platform.warehouse.catalog import publish


class ForgetPersonConfig(dg.Config):
    email: str | None = Field(
        default=None, description="The person's e-mail address. Dagster keeps run config: prefer email_key."
    )
    email_key: str | None = Field(default=None, description="The pseudonym of their e-mail (pii1:…)")
    device_id: str | None = Field(default=None, description="Their Profile Store DeviceId")
    warehouse_path: str | None = Field(
        default=None, description="The warehouse DuckDB file; EVENT_PLATFORM_WAREHOUSE when unset"
    )


def person(config: ForgetPersonConfig, profile_store: ProfileStoreResource) -> forget.Person:
    given = [name for name in ("email", "email_key", "device_id") if getattr(config, name)]
    if len(given) != 1:
        raise dg.Failure("Name the person by exactly one of email, email_key or device_id.")
    if config.email:
        return forget.Person.by_email(config.email, profile_store.pseudonymiser())
    if config.email_key:
        if not config.email_key.startswith("pii1:"):
            raise dg.Failure("email_key must be a pseudonym (pii1:…), as stored in user_email_key.")
        return forget.Person.by_email_key(config.email_key)
    return forget.Person.by_device_id(str(config.device_id))


@dg.op(out=dg.Out(dg.Nothing), pool="warehouse")
def forget_person(
    context: dg.OpExecutionContext,
    config: ForgetPersonConfig,
    profile_store: ProfileStoreResource,
    lake: LakeResource,
) -> None:
    """Find the person's events, delete them at the vendor, then from every lake table (a Delta DELETE,
    then their old versions), raw page and warehouse table that holds them. It writes the warehouse
    file, hence the `warehouse` pool."""
    who = person(config, profile_store)
    warehouse = Path(config.warehouse_path or settings.Platform.read().warehouse)
    report = forget.forget(
        who,
        lake=lake.lake(),
        client=profile_store.client(),
        warehouse=warehouse,
        republish=publish,
        log=context.log.info,
    )
    context.log.info(
        f"Forgot {who.description}: {report.events_found} event(s) found, {report.vendor_deleted} deleted at "
        f"the vendor, {sum(report.table_rows.values())} lake table row(s), {sum(report.raw_events.values())} "
        f"raw event(s), {sum(report.warehouse_rows.values())} warehouse row(s) removed."
    )
    context.add_output_metadata(
        {
            "events_found": dg.MetadataValue.int(report.events_found),
            "vendor_deleted": dg.MetadataValue.int(report.vendor_deleted),
            "vendor_unknown": dg.MetadataValue.int(report.vendor_unknown),
            "vendor_without_track_id": dg.MetadataValue.int(report.vendor_without_track_id),
            "replaced_files_deleted": dg.MetadataValue.int(report.replaced_files_deleted),
            "table_rows_removed": dg.MetadataValue.json(report.table_rows),
            "raw_events_removed": dg.MetadataValue.json(report.raw_events),
            "quarantine_lines_removed": dg.MetadataValue.json(report.quarantine_lines),
            "warehouse_rows_removed": dg.MetadataValue.json(report.warehouse_rows),
            "warehouse": dg.MetadataValue.text(report.warehouse),
        }
    )


@dg.job(
    description="Forget one person (GDPR erasure): their Profile Store events leave the vendor, every lake "
    "partition and the warehouse. Config: ops.forget_person.config.{email | email_key | device_id}.",
    tags={"profile_store": "forget"},
)
def forget_profile_store_person() -> None:
    forget_person()
