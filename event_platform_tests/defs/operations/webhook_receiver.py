"""A webhook receiver on 127.0.0.1 for the alert tests: records what it is sent, answers as told."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HOOK_PATH = "/services/T0001/B0002/s3cr3t-webhook-token"
"""Shaped like a Slack incoming-webhook path: the token is part of the URL."""


class WebhookReceiver:
    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self._statuses = deque(statuses)
        self.app = Starlette(routes=[Route(HOOK_PATH, self.hook, methods=["POST"])])

    async def hook(self, request: Request) -> JSONResponse:
        self.attempts += 1
        status = self._statuses.popleft() if self._statuses else 200
        if status == 200:
            self.received.append(await request.json())
        headers = {"Retry-After": "0"} if status == 429 else None
        return JSONResponse({"ok": status == 200}, status_code=status, headers=headers)
