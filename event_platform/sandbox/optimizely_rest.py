"""Optimizely's REST API for experiment metadata, served from the sandbox world (VENDORS.md §5).

The Optimizely sandbox mounts these routes beside its Authentication API, on the same 127.0.0.1 server,
so `OPTIMIZELY_REST_URL` is the sandbox's URL:
- `GET /v2/projects`, `/v2/projects/{id}`: the world's projects; one of them answers 403 (the sandbox
  token may not read it), as a project another team owns would;
- `GET /v2/experiments?project_id=`, `/v2/experiments/{id}`: the Web Experimentation experiments, with
  names, variation keys, planned weights in basis points and the ordered metrics;
- `GET /v2/events?project_id=`, `/v2/events/{id}`: the events, whose ids are the `entity_id`s the E3
  emulator writes (16-digit ids, beyond a float's exact integers, as Optimizely's are);
- `GET /flags/v1/projects/{id}/rules`, `/flags/v1/projects/{id}/rules/{experiment_id}`: the Feature
  Experimentation project's rules (an a/b test and a targeted delivery).
v2 lists page by `page`/`per_page` (default 25, at most 100) with `Link: <…>; rel="next"` while more
follow; the Flags API pages by an opaque `page_token` and `next_url`. Errors have the vendor's bodies
(v2 `{code, message}`, Flags API RFC 7807). `faults` makes the next requests answer 429 (with
`Retry-After`) or 500; every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from event_platform.sandbox.world import (
    PAGE_EVENTS,
    ConfiguredMetric,
    Experiment,
    Project,
    World,
)
from event_platform.sandbox.world import optimizely_event_id as entity_id

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
CREATED = "2025-01-01T09:00:00.000Z"
ENVIRONMENT = "production"
PROBLEM_JSON = "application/problem+json"


@dataclass
class RestFaults:
    """Counters for the next requests: each answered request spends one."""

    throttle: int = 0
    server_errors: int = 0
    retry_after: int = 1


@dataclass
class RestApi:
    world: World
    token: Callable[[], str]
    faults: RestFaults = field(default_factory=RestFaults)
    requests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def routes(self) -> list[Route]:
        return [
            Route("/v2/projects", self._projects, methods=["GET"]),
            Route("/v2/projects/{project_id}", self._project, methods=["GET"]),
            Route("/v2/experiments", self._experiments, methods=["GET"]),
            Route("/v2/experiments/{experiment_id}", self._experiment, methods=["GET"]),
            Route("/v2/events", self._events, methods=["GET"]),
            Route("/v2/events/{event_id}", self._event, methods=["GET"]),
            Route("/flags/v1/projects/{project_id}/rules", self._rules, methods=["GET"]),
            Route("/flags/v1/projects/{project_id}/rules/{experiment_id}", self._rule, methods=["GET"]),
        ]

    # -- v2 ------------------------------------------------------------------------------------------

    async def _projects(self, request: Request) -> Response:
        projects = [_project(project) for project in self.world.projects]
        return self._answer(request, lambda: self._v2_page(request, projects))

    async def _project(self, request: Request) -> Response:
        return self._answer(request, lambda: JSONResponse(_project(self._readable_project(request))))

    async def _experiments(self, request: Request) -> Response:
        def answer() -> Response:
            project = self._readable_project(request, request.query_params.get("project_id"))
            items = [_web_experiment(e) for e in self._experiments_of(project) if not e.flag_key]
            return self._v2_page(request, items)

        return self._answer(request, answer)

    async def _experiment(self, request: Request) -> Response:
        def answer() -> Response:
            experiment = self._experiment_by_id(request.path_params["experiment_id"])
            self._readable_project(request, experiment.project_id)
            if experiment.flag_key:
                raise _Refusal(
                    404, "NOT_FOUND", "This endpoint is not available for Feature Experimentation projects."
                )
            return JSONResponse(_web_experiment(experiment))

        return self._answer(request, answer)

    async def _events(self, request: Request) -> Response:
        def answer() -> Response:
            project = self._readable_project(request, request.query_params.get("project_id"))
            return self._v2_page(request, [_event(project, key) for key in event_keys(self.world)])

        return self._answer(request, answer)

    async def _event(self, request: Request) -> Response:
        def answer() -> Response:
            wanted = request.path_params["event_id"]
            for key in event_keys(self.world):
                if entity_id(key) == wanted:
                    return JSONResponse(_event(self.world.projects[0], key))
            raise _Refusal(404, "NOT_FOUND", f"Event {wanted} not found.")

        return self._answer(request, answer)

    # -- Flags API ---------------------------------------------------------------------------------

    async def _rules(self, request: Request) -> Response:
        def answer() -> Response:
            project = self._readable_project(request, problem=True)
            rules = [_rule(e) for e in self._experiments_of(project) if e.flag_key]
            rules += [_rollout(e) for e in self._experiments_of(project) if e.flag_key]
            return self._cursor_page(request, project, rules)

        return self._answer(request, answer)

    async def _rule(self, request: Request) -> Response:
        def answer() -> Response:
            project = self._readable_project(request, problem=True)
            experiment = self._experiment_by_id(request.path_params["experiment_id"], problem=True)
            if experiment.project_id != project.id or not experiment.flag_key:
                raise _Refusal(404, "Not Found", "No rule has this experiment id.", problem=True)
            return JSONResponse(_rule(experiment))

        return self._answer(request, answer)

    # -- shared --------------------------------------------------------------------------------------

    def _answer(self, request: Request, build: Callable[[], Response]) -> Response:
        with self._lock:
            query = f"?{request.url.query}" if request.url.query else ""
            self.requests.append(request.url.path + query)
            if self.faults.throttle > 0:
                self.faults.throttle -= 1
                return JSONResponse(
                    {"code": "TOO_MANY_REQUESTS", "message": "Rate limit exceeded."},
                    429,
                    headers={"Retry-After": str(self.faults.retry_after)},
                )
            if self.faults.server_errors > 0:
                self.faults.server_errors -= 1
                return JSONResponse({"code": "INTERNAL_ERROR", "message": "Try again."}, 500)
        problem = request.url.path.startswith("/flags/")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise _Refusal(401, "UNAUTHORIZED", "Authentication required.", problem=problem)
            if token.strip() != self.token():
                raise _Refusal(403, "FORBIDDEN", "Authentication Failed", problem=problem)
            return build()
        except _Refusal as refusal:
            return refusal.response()

    def _readable_project(
        self, request: Request, project_id: str | None = None, *, problem: bool = False
    ) -> Project:
        wanted = project_id or request.path_params.get("project_id")
        if not wanted:
            raise _Refusal(400, "BAD_REQUEST", "project_id is required.", problem=problem)
        project = next((p for p in self.world.projects if p.id == wanted), None)
        if project is None:
            raise _Refusal(404, "NOT_FOUND", f"Project {wanted} not found.", problem=problem)
        if project.forbidden:
            raise _Refusal(403, "FORBIDDEN", "You do not have access to this project.", problem=problem)
        return project

    def _experiments_of(self, project: Project) -> list[Experiment]:
        return [e for e in self.world.experiments if e.project_id == project.id]

    def _experiment_by_id(self, wanted: str, *, problem: bool = False) -> Experiment:
        experiment = next((e for e in self.world.experiments if e.id == wanted), None)
        if experiment is None:
            raise _Refusal(404, "NOT_FOUND", f"Experiment {wanted} not found.", problem=problem)
        return experiment

    def _v2_page(self, request: Request, items: Sequence[dict[str, Any]]) -> Response:
        page = _positive(request, "page", 1)
        per_page = min(_positive(request, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        start = (page - 1) * per_page
        headers = {}
        if start + per_page < len(items):
            following = request.url.include_query_params(page=page + 1, per_page=per_page)
            headers["Link"] = f'<{following}>; rel="next"'
        return JSONResponse(list(items[start : start + per_page]), headers=headers)

    def _cursor_page(self, request: Request, project: Project, items: Sequence[dict[str, Any]]) -> Response:
        per_page = min(_positive(request, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        start = _offset(request.query_params.get("page_token"))
        total_pages = max(1, -(-len(items) // per_page))
        body: dict[str, Any] = {
            "url": f"/projects/{project.id}/rules",
            "items": list(items[start : start + per_page]),
            "count": len(items[start : start + per_page]),
            "page": start // per_page + 1,
            "total_count": len(items),
            "total_pages": total_pages,
        }
        if start + per_page < len(items):
            token = base64.urlsafe_b64encode(f"offset:{start + per_page}".encode()).decode()
            body["next_url"] = f"/projects/{project.id}/rules?page_token={token}&per_page={per_page}"
        return JSONResponse(body)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, *, problem: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.problem = status, code, message, problem

    def response(self) -> Response:
        if self.problem:
            body = {"type": "about:blank", "title": self.code, "status": self.status, "detail": self.message}
            return JSONResponse(body, self.status, media_type=PROBLEM_JSON)
        return JSONResponse({"code": self.code, "message": self.message, "uuid": "sandbox"}, self.status)


def _positive(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise _Refusal(400, "BAD_REQUEST", f"{name} must be a positive integer.")
    return int(text)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        label, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if label == "offset" and number.isdigit():
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise _Refusal(400, "Bad Request", "page_token is not one this API issued.", problem=True)


def event_keys(world: World) -> list[str]:
    """Every event key of the E3 export: the page events and the experiments' metric events."""
    keys = [name for name, _ in PAGE_EVENTS]
    keys += [e.metric_event for e in world.experiments if e.metric_event not in keys]
    return keys


def _project(project: Project) -> dict[str, Any]:
    return {
        "id": int(project.id),
        "account_id": 21468570738,
        "name": project.name,
        "platform": "custom" if project.platform == "feature" else "web",
        "status": "active",
        "is_flags_enabled": project.platform == "feature",
        "created": CREATED,
    }


def _event(project: Project, key: str) -> dict[str, Any]:
    return {
        "id": int(entity_id(key)),
        "project_id": int(project.id),
        "key": key,
        "name": key.replace("_", " ").capitalize(),
        "event_type": "pageview" if key.endswith("_view") else "custom",
        "category": "other",
        "archived": False,
        "created": CREATED,
    }


def _metric(metric: ConfiguredMetric) -> dict[str, Any]:
    body: dict[str, Any] = {
        "aggregator": metric.aggregator,
        "scope": metric.scope,
        "winning_direction": metric.winning_direction,
    }
    if metric.event is not None:
        body["event_id"] = int(entity_id(metric.event))
    if metric.field is not None:
        body["field"] = metric.field
    if metric.display_title is not None:
        body["display_title"] = metric.display_title
    return body


def _web_experiment(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": int(experiment.id),
        "project_id": int(experiment.project_id),
        "campaign_id": int(experiment.campaign_id),
        "name": experiment.name,
        "description": experiment.description,
        "status": "running",
        "type": "a/b",
        "created": CREATED,
        "last_modified": CREATED,
        "earliest": f"{experiment.start.isoformat()}T00:00:00.000Z",
        "holdback": 0,
        "traffic_allocation": 10_000,
        "variations": [
            {
                "variation_id": int(variation.id),
                "name": variation.name,
                "key": variation.key,
                "weight": variation.planned_weight_bp,
                "status": "active",
                "actions": [],
            }
            for variation in experiment.variations
        ],
        "metrics": [_metric(metric) for metric in experiment.metrics],
    }


def _rule(experiment: Experiment) -> dict[str, Any]:
    return {
        "key": f"{experiment.name}_test",
        "name": experiment.name,
        "description": experiment.description,
        "type": "a/b",
        "status": "running",
        "flag_key": experiment.flag_key,
        "environment_key": ENVIRONMENT,
        "percentage_included": 10_000,
        "layer_id": int(experiment.campaign_id),
        "layer_experiment_id": int(experiment.id),
        "baseline_variation_id": int(experiment.control.id),
        "created_time": CREATED,
        "updated_time": CREATED,
        "variations": {
            variation.key: {
                "key": variation.key,
                "name": variation.name,
                "variation_id": int(variation.id),
                "percentage_included": variation.planned_weight_bp,
            }
            for variation in experiment.variations
        },
        "metrics": [_metric(metric) for metric in experiment.metrics],
    }


def _rollout(experiment: Experiment) -> dict[str, Any]:
    """A targeted delivery on the same flag: a rule, but a rollout rather than an experiment."""
    return {
        "key": f"{experiment.flag_key}_rollout",
        "name": f"{experiment.flag_key} rollout",
        "type": "targeted_delivery",
        "status": "running",
        "flag_key": experiment.flag_key,
        "environment_key": ENVIRONMENT,
        "percentage_included": 500,
        "layer_id": int(experiment.campaign_id) + 1,
        "layer_experiment_id": int(experiment.id) + 1_000,
        "variations": {"on": {"key": "on", "name": "On", "variation_id": 1, "percentage_included": 10_000}},
        "metrics": [],
    }
