"""Serve an ASGI app on 127.0.0.1 from a background thread: how every emulator and test runs a server."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import uvicorn
from starlette.types import ASGIApp


@dataclass
class LoopbackServer:
    url: str
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, name: str = "loopback") -> LoopbackServer:
    """Start `app` and return once it accepts connections; port 0 picks a free port."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} server did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    return LoopbackServer(url=f"http://{host}:{bound_port}", _server=server, _thread=thread)


class LoopbackService(ABC):
    """An emulator's lifecycle around `serve`: `start()` (or `with`) serves `app()` on 127.0.0.1,
    `url` says where, `stop()` ends it. Subclasses that run more (another server, a client, a cache)
    extend `start`/`stop` and call these."""

    name: ClassVar[str]
    """Names the server thread and the emulator in errors, e.g. "amplitude"."""
    _server: LoopbackServer | None = None

    @abstractmethod
    def app(self) -> ASGIApp: ...

    def start(self) -> Self:
        if self._server is None:
            self._server = serve(self.app(), name=self.name)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(
                f"The {self.name} emulator is not running: call start() or use it as a context manager"
            )
        return self._server.url
