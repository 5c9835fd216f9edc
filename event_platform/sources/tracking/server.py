"""How `event-platform tracking serve` runs the collector: uvicorn, with limits for slow and hostile clients.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and concurrent connections and
requests (`limit_concurrency`: past it, 503 at once); it has no deadline for a request's head, so a
client sending a byte a second would hold its connection for ever, and its httptools protocol (the
faster of its two) no bound on the head's size. `HeaderDeadline` adds both: a connection whose next
request head has not arrived within `header_seconds` of its opening (or of its previous response), or
has sent more than `max_head_bytes` without completing one, is closed. The body has its own deadline
in the collector (`CollectorSettings.body_seconds`). The
concurrency limit stays below the process's descriptor limit, so a flood of connections is answered
503 and closed rather than leaving the collector unable to accept, or to open a file to land events.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DESCRIPTORS_KEPT_FREE = 64
"""Descriptors the concurrency limit leaves for landing files, logs and the lake's client."""


@dataclass(frozen=True)
class ServerLimits:
    header_seconds: float = 10.0
    """A request head must arrive within this many seconds."""
    keep_alive_seconds: float = 5.0
    """An idle keep-alive connection is closed after this long."""
    max_connections: int = 1000
    """Connections and requests in flight; lowered to fit the descriptor limit."""
    max_head_bytes: int = 16 * 1024
    """The largest request line and headers accepted."""


class HeaderDeadline:
    """Mixed into a uvicorn HTTP protocol: closes a connection whose request head is not complete in
    time. Both of uvicorn's protocols start `cycle` when a head is complete and call
    `on_response_complete` when a response is sent; this relies only on those."""

    header_seconds: float = ServerLimits.header_seconds
    max_head_bytes: int = ServerLimits.max_head_bytes
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        head_pending = self._header_deadline is not None
        if head_pending:
            self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[misc]
        if self.cycle is not self._waiting_after and self._header_deadline is not None:
            self._header_deadline.cancel()  # a new request's head arrived: the body has its own deadline
            self._header_deadline = None
        elif head_pending and self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
            self.transport.close()  # a head this long is not a tracking request

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_header_deadline(self) -> None:
        if getattr(self, "_header_deadline", None) is not None:
            self._header_deadline.cancel()
        self._waiting_after: Any = self.cycle
        self._head_bytes = 0
        self._header_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_seconds, self._close_slow_connection
        )

    def _close_slow_connection(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def protocol_with(limits: ServerLimits) -> type:
    """uvicorn's httptools protocol (its parser is C, h11's is Python) with the head deadline and limit."""
    limits_of_class = {"header_seconds": limits.header_seconds, "max_head_bytes": limits.max_head_bytes}
    return type("CollectorProtocol", (HeaderDeadline, HttpToolsProtocol), limits_of_class)


def concurrency_limit(wanted: int) -> int:
    """`wanted`, lowered so that connections cannot take every descriptor; raises the soft descriptor
    limit to the hard one first (the usual 1,024 soft limit is a default, not a decision)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65_536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        soft = max(soft, target)
    return max(1, min(wanted, soft - DESCRIPTORS_KEPT_FREE))


def uvicorn_config(app: Any, *, host: str, port: int, limits: ServerLimits, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_with(limits),
        timeout_keep_alive=int(max(1, limits.keep_alive_seconds)),
        limit_concurrency=concurrency_limit(limits.max_connections),
        loop="uvloop",
        lifespan="off",
        proxy_headers=False,  # the collector never reads a client's address or scheme: nothing to rewrite
        **options,
    )


def run_workers(
    make_app: Callable[[], Any], *, host: str, port: int, limits: ServerLimits, workers: int, **options: Any
) -> None:
    """Serve `make_app()` from `workers` processes sharing one listening socket (forked after it is
    bound; the kernel spreads connections). Commits need no coordination between processes: each
    writes files and records of its own. Each worker remembers only its own recent uuids; a re-send
    that reaches another worker lands twice and the asset's dedupe on `uuid` removes it."""
    if workers == 1:
        uvicorn.Server(uvicorn_config(make_app(), host=host, port=port, limits=limits, **options)).run()
        return
    listening = uvicorn_config(None, host=host, port=port, limits=limits).bind_socket()
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_serve_on, args=(make_app, listening, limits, options), name=f"collector-{n}")
        for n in range(workers)
    ]
    for process in processes:
        process.start()
    stop = lambda *_: [process.terminate() for process in processes]  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        stop()
    finally:
        listening.close()


def _serve_on(
    make_app: Callable[[], Any], listening: Any, limits: ServerLimits, options: dict[str, Any]
) -> None:
    config = uvicorn_config(make_app(), host="", port=0, limits=limits, **options)
    uvicorn.Server(config).run(sockets=[listening])
