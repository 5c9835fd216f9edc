"""Optimizely's REST APIs for experiment metadata: Web Experimentation v2 and the Flags API (VENDORS.md §5).

No Dagster here: the `optimizely/experiments` asset and `event-platform optimizely experiments` use it.

- One `requests.Session` carries the personal access token as a Bearer header; the token is never in a
  URL, a log line, a repr or an exception.
- `OPTIMIZELY_REST_URL` (default `https://api.optimizely.com`) is the base of both `/v2/…` and
  `/flags/v1/…`, so the sandbox or a proxy replaces both.
- Requests are spaced to `requests_per_second` (the Flags API documents 2/s; v2 publishes no limit).
- v2 lists page by `page`/`per_page` (at most 100): `Link: <…>; rel="next"` is followed when present,
  else a short or empty page ends the list. Flags API lists page by cursor: `next_url` carries the
  `page_token` of the next page; a short page or the last of `total_pages` ends the list.
- 429 and 5xx are retried by `event_platform.retry` (backoff with jitter, `Retry-After` as a floor).
  401, 403 and 404 raise errors whose message names the fix; a 403 on one project is
  `ProjectForbiddenError`, which callers turn into a warning and skip that project.
- Ids are 16-digit int64 values in JSON. Python's json keeps them exact as `int`; `as_id` turns them into
  the digit strings E3 stores and refuses a float, whose 53-bit mantissa may already have changed them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import requests

from event_platform.retry import Backoff, TransientError, call_with_retries, retry_after_seconds

log = logging.getLogger(__name__)

DEFAULT_REST_URL = "https://api.optimizely.com"
FLAGS_PREFIX = "/flags/v1"
DEFAULT_REQUESTS_PER_SECOND = 2.0
MAX_PER_PAGE = 100
MAX_PAGES = 10_000
"""A list longer than this many pages is a server that keeps answering "next": stop with an error."""
REST_BACKOFF = Backoff(attempts=6, base_seconds=1.0, max_seconds=60.0)


class OptimizelyRestError(RuntimeError):
    """The REST API refused or broke a request in a way retrying will not fix; the message names the fix."""


class OptimizelyAuthError(OptimizelyRestError):
    """401 (no token reached the API) or 403 on the account as a whole (the token was refused)."""


class ProjectForbiddenError(OptimizelyRestError):
    """403 on one project: the token's user cannot see it. The others can still be read."""

    def __init__(self, project_id: str, message: str) -> None:
        super().__init__(message)
        self.project_id = project_id


class NotFoundError(OptimizelyRestError):
    """404: the project, experiment or rule does not exist (or not for this token)."""


def as_id(value: object) -> str | None:
    """An Optimizely id as the digit string E3 stores; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool | float):
        raise OptimizelyRestError(
            f"an id arrived as {type(value).__name__} {value!r}: an int64 id must not pass through a float"
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise OptimizelyRestError(f"an id arrived as {value!r}, which is not an id")


class Throttle:
    """Spaces calls at least `1 / per_second` seconds apart, across threads."""

    def __init__(
        self,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"requests per second must be positive, not {per_second}")
        self.interval = 1.0 / per_second
        self._clock = clock
        self._sleep = sleep
        self._next_at = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next_at:
                self._sleep(self._next_at - now)
                now = self._next_at
            self._next_at = now + self.interval


class OptimizelyRestClient:
    """Reads projects, experiments, events and Flags API rules; every list is followed to its end."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str = DEFAULT_REST_URL,
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        per_page: int = MAX_PER_PAGE,
        backoff: Backoff = REST_BACKOFF,
        timeout_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        throttle: Throttle | None = None,
        http: requests.Session | None = None,
    ) -> None:
        if not token:
            raise OptimizelyAuthError(
                "Optimizely's REST API needs a personal access token: set OPTIMIZELY_API_TOKEN."
            )
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be 1..{MAX_PER_PAGE}, not {per_page}")
        self.base_url = base_url.rstrip("/")
        self.per_page = per_page
        self._backoff = backoff
        self._timeout = timeout_seconds
        self._sleep = sleep
        self._throttle = throttle or Throttle(requests_per_second, sleep=sleep)
        self._http = http or requests.Session()
        self._token = token
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._http.headers["Accept"] = "application/json"
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"OptimizelyRestClient(base_url={self.base_url!r})"

    # -- Web Experimentation v2 ----------------------------------------------------------------------

    def projects(self) -> list[dict[str, Any]]:
        """Every project the token's user can see."""
        return list(self._v2_pages("/v2/projects", {}, what="the project list"))

    def project(self, project_id: str) -> dict[str, Any]:
        what = f"project {project_id}"
        return self._get_json(f"/v2/projects/{project_id}", {}, what=what, project=project_id)

    def experiments(self, project_id: str) -> list[dict[str, Any]]:
        """A Web Experimentation project's experiments (every status)."""
        return self._of_project("experiments", project_id)

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return self._get_json(f"/v2/experiments/{experiment_id}", {}, what=f"experiment {experiment_id}")

    def events(self, project_id: str) -> list[dict[str, Any]]:
        """A project's events: conversions join them on `entity_id` = `Event.id`."""
        return self._of_project("events", project_id)

    def _of_project(self, collection: str, project_id: str) -> list[dict[str, Any]]:
        what = f"the {collection} of project {project_id}"
        return list(
            self._v2_pages(f"/v2/{collection}", {"project_id": project_id}, what=what, project=project_id)
        )

    # -- Feature Experimentation (Flags API) -----------------------------------------------------------

    def rules(self, project_id: str) -> list[dict[str, Any]]:
        """Every rule of a Feature Experimentation project, in every environment."""
        return list(
            self._cursor_pages(
                f"{FLAGS_PREFIX}/projects/{project_id}/rules",
                what=f"the flag rules of project {project_id}",
                project=project_id,
            )
        )

    def rule(self, project_id: str, experiment_id: str) -> dict[str, Any]:
        """The rule behind an E3 `experiment_id` (its `layer_experiment_id`)."""
        return self._get_json(
            f"{FLAGS_PREFIX}/projects/{project_id}/rules/{experiment_id}",
            {},
            what=f"the rule of experiment {experiment_id} in project {project_id}",
            project=project_id,
        )

    # -- paging ----------------------------------------------------------------------------------------

    def _v2_pages(
        self, path: str, params: Mapping[str, Any], *, what: str, project: str | None = None
    ) -> Iterator[dict[str, Any]]:
        first = self._url(path)
        url, query = first, {**params, "page": 1, "per_page": self.per_page}
        for page in range(1, MAX_PAGES + 1):
            response, items = self._get(url, query, what=what, project=project)
            if not isinstance(items, list):
                raise OptimizelyRestError(f"{what}: expected a JSON array, got {type(items).__name__}")
            yield from items
            next_link = response.links.get("next", {}).get("url")
            if next_link:
                url, query = urljoin(response.url, next_link), None
            elif len(items) < self.per_page:
                return
            else:
                # A full page and no Link header (not every deployment sends one): ask for the next.
                url, query = first, {**params, "page": page + 1, "per_page": self.per_page}
        raise OptimizelyRestError(f"{what}: more than {MAX_PAGES} pages; the API keeps answering `next`")

    def _cursor_pages(self, path: str, *, what: str, project: str | None = None) -> Iterator[dict[str, Any]]:
        url = self._url(path)
        query: dict[str, Any] | None = {"per_page": self.per_page}
        for page in range(1, MAX_PAGES + 1):
            _, body = self._get(url, query, what=what, project=project)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise OptimizelyRestError(f"{what}: expected an object with `items`, got {str(body)[:200]}")
            yield from items
            next_url = body.get("next_url")
            total_pages = body.get("total_pages")
            last = isinstance(total_pages, int) and int(body.get("page") or page) >= total_pages
            if not next_url or len(items) < self.per_page or last:
                return
            url, query = self._flags_url(str(next_url)), None
        raise OptimizelyRestError(f"{what}: more than {MAX_PAGES} pages; the API keeps sending `next_url`")

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _flags_url(self, link: str) -> str:
        """The Flags API's links are relative to `/flags/v1` (RESTful JSON); absolute ones are kept."""
        if link.startswith(("http://", "https://")):
            return link
        if link.startswith(FLAGS_PREFIX + "/"):
            return self._url(link)
        return self._url(FLAGS_PREFIX + "/" + link.lstrip("/"))

    # -- one request -----------------------------------------------------------------------------------

    def _get_json(
        self, path: str, params: Mapping[str, Any], *, what: str, project: str | None = None
    ) -> dict[str, Any]:
        _, body = self._get(self._url(path), dict(params), what=what, project=project)
        if not isinstance(body, dict):
            raise OptimizelyRestError(f"{what}: expected a JSON object, got {type(body).__name__}")
        return body

    def _get(
        self, url: str, params: Mapping[str, Any] | None, *, what: str, project: str | None
    ) -> tuple[requests.Response, Any]:
        """One GET, retried on 429/5xx and unreadable bodies; `params` None when `url` carries them."""

        def attempt() -> tuple[requests.Response, Any]:
            self._throttle.wait()
            self.requests_made += 1
            response = self._http.get(url, params=params, timeout=self._timeout)
            _raise_for_status(response, what, project, self._token)
            try:
                return response, response.json()
            except ValueError:
                # A proxy's HTML page or a body cut short: another attempt may get the real answer.
                raise TransientError(f"{what}: the response is not JSON") from None

        description = f"Optimizely REST request for {what}"
        return call_with_retries(attempt, backoff=self._backoff, description=description, sleep=self._sleep)


def _raise_for_status(response: requests.Response, what: str, project: str | None, token: str) -> None:
    status = response.status_code
    if status == 200:
        return
    if status == 429 or status >= 500:
        raise TransientError(f"HTTP {status}", retry_after=retry_after_seconds(response))
    # The vendor's message may quote what it was sent; the token never leaves this client.
    detail = _error_detail(response).replace(token, "***")
    if status == 401:
        raise OptimizelyAuthError(
            f"Optimizely's REST API answered 401 for {what}: no token reached it{detail}. Set "
            "OPTIMIZELY_API_TOKEN to a personal access token (it is sent as `Authorization: Bearer`)."
        )
    if status == 403:
        if project is not None:
            raise ProjectForbiddenError(
                project,
                f"Optimizely's REST API answered 403 for {what}{detail}: the token's user has no access to "
                f"project {project}. Ask for access, or leave it out of OPTIMIZELY_PROJECT_IDS.",
            )
        raise OptimizelyAuthError(
            f"Optimizely's REST API answered 403 for {what}{detail}: the token was refused. Check that "
            "OPTIMIZELY_API_TOKEN is a current personal access token (Settings > API Access)."
        )
    if status == 404:
        hint = (
            f" Check that project {project} exists and that OPTIMIZELY_PROJECT_IDS names it."
            if project is not None
            else " Check the id, and OPTIMIZELY_REST_URL if you set it."
        )
        raise NotFoundError(f"Optimizely's REST API answered 404 for {what}{detail}.{hint}")
    raise OptimizelyRestError(f"Optimizely's REST API answered HTTP {status} for {what}{detail}.")


def _error_detail(response: requests.Response) -> str:
    """The vendor's own words: v2 `{code, message}`, Flags API RFC 7807 `{title, detail}`."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    words = [str(body[key]) for key in ("message", "title", "detail") if body.get(key)]
    return f" ({'; '.join(words)[:200]})" if words else ""
