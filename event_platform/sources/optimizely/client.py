"""Optimizely Enriched Events Export (E3): credentials from the Authentication API and the S3 layout.

No Dagster here: the assets, the sensor and the `event-platform optimizely` commands all use this.

Temporary credentials are botocore `RefreshableCredentials`: every S3 request asks them for keys, and
they call the Authentication API again once fewer than `refresh_margin` seconds remain, so a load that
outlives one set of credentials carries on with the next.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.loaders
import botocore.session
import requests
from botocore.config import Config

from event_platform.retry import Backoff, TransientError, call_with_retries, retry_after_seconds
from event_platform.sources.optimizely.schema import E3Type

log = logging.getLogger(__name__)

DEFAULT_AUTH_URL = "https://api.optimizely.com/v2/export/credentials"
DEFAULT_BUCKET = "optimizely-events-data"
DEFAULT_REGION = "us-east-1"
SUCCESS_MARKER = "_SUCCESS"
MIN_DURATION_SECONDS = 15 * 60
MAX_DURATION_SECONDS = 60 * 60
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
AUTH_BACKOFF = Backoff(attempts=5, base_seconds=1.0, max_seconds=30.0)
S3_BACKOFF = Backoff(attempts=5, base_seconds=0.5, max_seconds=30.0)
TRANSIENT_S3_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "InternalError", "ServiceUnavailable"}
)


class E3Error(RuntimeError):
    """E3 refused or broke a request in a way retrying will not fix; the message names the fix."""


class E3AuthError(E3Error):
    """The Authentication API turned the token down (401 missing, 403 bad)."""


def parse_duration(text: str) -> int:
    """The Authentication API's `duration` ("15m" .. "1h", also "900s") as seconds, validated."""
    match = re.fullmatch(r"\s*(\d+)\s*([smh])\s*", text or "")
    if not match:
        raise ValueError(f"Invalid credentials duration {text!r}: use e.g. 15m, 30m or 1h.")
    seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not MIN_DURATION_SECONDS <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"Credentials duration {text!r} is out of range: Optimizely issues 15m to 1h.")
    return seconds


@dataclass(frozen=True)
class E3Location:
    """Where an account's export lives: `s3://<bucket>/<prefix>/type=…/date=…/`."""

    bucket: str
    prefix: str
    """`v1/account_id=<id>`, without slashes at either end."""

    @classmethod
    def from_s3_path(cls, s3_path: str) -> E3Location:
        """Parse the API's `s3Path`, whose trailing slash varies."""
        match = re.fullmatch(r"s3://([^/]+)/?(.*?)/*", s3_path.strip())
        if not match:
            raise E3Error(f"The Authentication API returned an unusable s3Path {s3_path!r}.")
        return cls(bucket=match.group(1), prefix=match.group(2).strip("/"))

    @classmethod
    def for_account(cls, account_id: str, bucket: str = DEFAULT_BUCKET) -> E3Location:
        if not account_id.isdigit():
            raise ValueError(f"Invalid Optimizely account id {account_id!r}: it is a number.")
        return cls(bucket=bucket, prefix=f"v1/account_id={account_id}")

    @property
    def s3_path(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def type_prefix(self, e3: E3Type) -> str:
        return f"{self.prefix}/type={e3.name}/"

    def date_prefix(self, e3: E3Type, day: dt.date) -> str:
        return f"{self.type_prefix(e3)}date={day.isoformat()}/"


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: dt.datetime

    def as_botocore_metadata(self) -> dict[str, str]:
        return {
            "access_key": self.access_key_id,
            "secret_key": self.secret_access_key,
            "token": self.session_token,
            "expiry_time": self.expiration.isoformat(),
        }


@dataclass(frozen=True)
class IssuedCredentials:
    credentials: TemporaryCredentials
    s3_path: str
    location: E3Location


class CredentialsApi:
    """`GET {auth_url}?duration=…` with the personal access token as a Bearer token."""

    def __init__(
        self,
        token: str,
        *,
        auth_url: str = DEFAULT_AUTH_URL,
        duration: str = "1h",
        backoff: Backoff = AUTH_BACKOFF,
        timeout_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        http: requests.Session | None = None,
    ) -> None:
        parse_duration(duration)
        self._token = token
        self.auth_url = auth_url
        self.duration = duration
        self._backoff = backoff
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._http = http or requests.Session()

    def __repr__(self) -> str:
        return f"CredentialsApi(auth_url={self.auth_url!r}, duration={self.duration!r})"

    def fetch(self) -> IssuedCredentials:
        return call_with_retries(
            self._fetch_once,
            backoff=self._backoff,
            description=f"Optimizely credentials request to {self.auth_url}",
            sleep=self._sleep,
        )

    def _fetch_once(self) -> IssuedCredentials:
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        response = self._http.get(
            self.auth_url, params={"duration": self.duration}, headers=headers, timeout=self._timeout
        )
        status = response.status_code
        if status == 401:
            raise E3AuthError(
                "Optimizely's Authentication API answered 401: no API token reached it. Set "
                "OPTIMIZELY_API_TOKEN (or pass --token) to a personal access token."
            )
        if status == 403:
            raise E3AuthError(
                "Optimizely's Authentication API answered 403: the API token was refused. Check that "
                "OPTIMIZELY_API_TOKEN is a current personal access token of a user allowed to export "
                "Enriched Events."
            )
        if status == 429 or status >= 500:
            raise TransientError(f"HTTP {status}", retry_after=retry_after_seconds(response))
        if status != 200:
            raise E3Error(f"Optimizely's Authentication API answered HTTP {status}: {response.text[:200]}")
        try:
            body = response.json()
            raw = body["credentials"]
            credentials = TemporaryCredentials(
                access_key_id=raw["accessKeyId"],
                secret_access_key=raw["secretAccessKey"],
                session_token=raw["sessionToken"],
                expiration=dt.datetime.fromtimestamp(int(raw["expiration"]) / 1000, tz=dt.UTC),
            )
            s3_path = body["s3Path"]
        except (ValueError, KeyError, TypeError) as error:
            # A proxy page or a cut-off body: worth another try.
            raise TransientError(f"unreadable credentials response ({type(error).__name__})") from None
        return IssuedCredentials(credentials, s3_path, E3Location.from_s3_path(s3_path))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class E3Client:
    """Lists and downloads an account's E3 files; build it with `from_token` or `from_aws_credentials`."""

    def __init__(self, location: E3Location, s3: Any, *, backoff: Backoff = S3_BACKOFF) -> None:
        self.location = location
        self.s3 = s3
        self._backoff = backoff

    def __repr__(self) -> str:
        return f"E3Client(location={self.location.s3_path!r})"

    @classmethod
    def connect(
        cls,
        *,
        token: str | None,
        account_id: str | None,
        auth_url: str | None = None,
        bucket: str | None = None,
        s3_endpoint_url: str | None = None,
        duration: str = "1h",
    ) -> E3Client:
        """A token wins (temporary credentials and the account's own path); else plain AWS credentials."""
        if token:
            api = CredentialsApi(token, auth_url=auth_url or DEFAULT_AUTH_URL, duration=duration)
            return cls.from_token(api, s3_endpoint_url=s3_endpoint_url)
        if account_id:
            return cls.from_aws_credentials(
                account_id, bucket=bucket or DEFAULT_BUCKET, s3_endpoint_url=s3_endpoint_url
            )
        raise E3Error(
            "No way into E3: give an API token (OPTIMIZELY_API_TOKEN / --token), or an account id "
            "(OPTIMIZELY_ACCOUNT_ID / --account-id) with AWS credentials in the environment."
        )

    @classmethod
    def from_token(
        cls,
        api: CredentialsApi,
        *,
        s3_endpoint_url: str | None = None,
        refresh_margin_seconds: float | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
        backoff: Backoff = S3_BACKOFF,
    ) -> E3Client:
        """Temporary credentials, refreshed from `api` when fewer than the margin's seconds remain.

        The default margin is a quarter of the first credentials' lifetime, at most 10 minutes: 10
        minutes for Optimizely's hour, 15 s for a sandbox's minute.
        """
        issued = api.fetch()
        if refresh_margin_seconds is None:
            lifetime = (issued.credentials.expiration - clock()).total_seconds()
            refresh_margin_seconds = max(1.0, min(600.0, lifetime / 4))

        def refresh() -> dict[str, str]:
            renewed = api.fetch()
            log.info("Renewed Optimizely export credentials, valid until %s", renewed.credentials.expiration)
            return renewed.credentials.as_botocore_metadata()

        credentials = botocore.credentials.RefreshableCredentials(
            access_key=issued.credentials.access_key_id,
            secret_key=issued.credentials.secret_access_key,
            token=issued.credentials.session_token,
            expiry_time=issued.credentials.expiration,
            refresh_using=refresh,
            method=_IssuedCredentialsProvider.METHOD,
            time_fetcher=clock,
            advisory_timeout=refresh_margin_seconds,
            mandatory_timeout=refresh_margin_seconds / 2,
        )
        session = _botocore_session()
        # First in the session's provider chain, so AWS_* variables or profiles never shadow the token's keys.
        chain = session.get_component("credential_provider")
        chain.insert_before(chain.providers[0].METHOD, _IssuedCredentialsProvider(credentials))
        s3 = _s3_client(session, s3_endpoint_url)
        return cls(issued.location, s3, backoff=backoff)

    @classmethod
    def from_aws_credentials(
        cls,
        account_id: str,
        *,
        bucket: str = DEFAULT_BUCKET,
        s3_endpoint_url: str | None = None,
        backoff: Backoff = S3_BACKOFF,
    ) -> E3Client:
        """Plain AWS credentials from the standard chain (AWS_ACCESS_KEY_ID, profiles, roles)."""
        location = E3Location.for_account(account_id, bucket)
        return cls(location, _s3_client(_botocore_session(), s3_endpoint_url), backoff=backoff)

    def list_dates(self, e3: E3Type) -> list[dt.date]:
        """The `date=…` folders of a type, oldest first."""
        names = self._list_folders(self.location.type_prefix(e3))
        dates = [name.partition("=")[2] for name in names if name.startswith("date=")]
        return sorted(dt.date.fromisoformat(date) for date in dates)

    def list_folders(self, e3: E3Type, day: dt.date) -> list[str]:
        """`experiment=…` or `event=…` folder names of one date, what `oevents ls` prints."""
        prefix = f"{e3.folder_key}="
        folders = self._list_folders(self.location.date_prefix(e3, day))
        return sorted(name for name in folders if name.startswith(prefix))

    def list_day(self, e3: E3Type, day: dt.date) -> DayListing:
        """Every part file of one date (all folders) and whether its `_SUCCESS` marker is there."""
        date_prefix = self.location.date_prefix(e3, day)
        parts: list[E3Object] = []
        has_success = False
        for item in self._list_objects(date_prefix):
            relative = item["Key"][len(date_prefix) :]
            if relative == SUCCESS_MARKER:
                has_success = True
            elif relative.endswith(".parquet") and "/" in relative:
                etag = item.get("ETag", "").strip('"')
                parts.append(E3Object(item["Key"], relative, int(item["Size"]), etag))
        return DayListing(e3.name, day, sorted(parts, key=lambda part: part.relative_path), has_success)

    def download(self, part: E3Object, destination: Path) -> int:
        """Stream one object to a local file in chunks; a broken or short transfer is tried again whole."""

        def attempt() -> int:
            with self._s3_errors(part.key):
                response = self.s3.get_object(Bucket=self.location.bucket, Key=part.key)
                with destination.open("wb") as file:
                    written = _copy_stream(response["Body"], file)
            if written != part.size:
                raise TransientError(f"short read of {part.key}: {written} of {part.size} bytes")
            return written

        return call_with_retries(
            attempt, backoff=self._backoff, description=f"download of s3://{self.location.bucket}/{part.key}"
        )

    def _list_folders(self, prefix: str) -> list[str]:
        folders: list[str] = []
        for page in self._pages(prefix, delimiter="/"):
            for entry in page.get("CommonPrefixes", []):
                folders.append(entry["Prefix"][len(prefix) :].strip("/"))
        return folders

    def _list_objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        for page in self._pages(prefix):
            yield from page.get("Contents", [])

    def _pages(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        """ListObjectsV2 pages; each page is its own retried request, resumed by its continuation token."""
        token: str | None = None
        while True:
            arguments: dict[str, Any] = {"Bucket": self.location.bucket, "Prefix": prefix}
            if delimiter:
                arguments["Delimiter"] = delimiter
            if token:
                arguments["ContinuationToken"] = token

            def attempt(arguments: dict[str, Any] = arguments) -> dict[str, Any]:
                with self._s3_errors(prefix):
                    return self.s3.list_objects_v2(**arguments)

            page = call_with_retries(
                attempt, backoff=self._backoff, description=f"listing of s3://{self.location.bucket}/{prefix}"
            )
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def _s3_errors(self, key: str) -> _S3Errors:
        return _S3Errors(f"s3://{self.location.bucket}/{key}")


@dataclass(frozen=True)
class E3Object:
    key: str
    relative_path: str
    """Below the date folder: `experiment=123/part-00000-….c000.snappy.parquet`."""
    size: int
    etag: str

    @property
    def folder(self) -> str:
        return self.relative_path.split("/", 1)[0]


@dataclass(frozen=True)
class DayListing:
    type_name: str
    day: dt.date
    parts: list[E3Object]
    has_success: bool

    @property
    def total_bytes(self) -> int:
        return sum(part.size for part in self.parts)


class _IssuedCredentialsProvider(botocore.credentials.CredentialProvider):
    """Hands botocore the refreshable credentials of the Authentication API."""

    METHOD = "optimizely-authentication-api"

    def __init__(self, credentials: botocore.credentials.RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> botocore.credentials.RefreshableCredentials:
        return self._credentials


class _S3Errors:
    """Turns botocore failures into TransientError (retry) or E3Error (a message that names the fix)."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> bool:
        if error is None:
            return False
        if isinstance(error, botocore.exceptions.ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in TRANSIENT_S3_CODES or status == 429 or status >= 500:
                raise TransientError(f"S3 {code or status} on {self.where}") from None
            if status == 403 or code in {"AccessDenied", "ExpiredToken", "InvalidAccessKeyId"}:
                raise E3AuthError(
                    f"S3 refused access to {self.where} ({code}): the export credentials are expired or do "
                    "not cover this account; check the token, or the account id and AWS credentials."
                ) from None
            raise E3Error(f"S3 request for {self.where} failed: {code or status}") from None
        if isinstance(
            error,
            botocore.exceptions.ConnectionError
            | botocore.exceptions.HTTPClientError
            | botocore.exceptions.ResponseStreamingError
            | botocore.exceptions.IncompleteReadError,
        ):
            raise TransientError(f"transfer of {self.where} broke: {type(error).__name__}") from None
        return False


def _copy_stream(body: Any, file: BinaryIO) -> int:
    written = 0
    for chunk in body.iter_chunks(DOWNLOAD_CHUNK_BYTES):
        file.write(chunk)
        written += len(chunk)
    return written


@functools.cache
def _service_model_loader() -> botocore.loaders.Loader:
    return botocore.loaders.create_loader()


def _botocore_session() -> botocore.session.Session:
    """A fresh session (own credentials) that shares the parsed service models: a client is built per
    sensor tick and per run, and parsing S3's model each time costs a third of a second."""
    session = botocore.session.get_session()
    session.register_component("data_loader", _service_model_loader())
    return session


def _s3_client(botocore_session: botocore.session.Session, endpoint_url: str | None) -> Any:
    # Retries are ours (event_platform.retry), so botocore makes exactly one attempt per call.
    # Endpoints other than AWS (moto, MinIO) serve buckets as paths, not virtual hosts.
    addressing = "path" if endpoint_url else "auto"
    config = Config(
        retries={"total_max_attempts": 1, "mode": "standard"}, s3={"addressing_style": addressing}
    )
    session = boto3.Session(botocore_session=botocore_session)
    return session.client("s3", region_name=DEFAULT_REGION, endpoint_url=endpoint_url, config=config)
