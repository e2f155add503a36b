"""Serve the view with Bokeh's server in a background thread (so a run can go on in the main thread)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import webbrowser

from tme_sim.errors import TMEError
from tme_sim.view.app import make_document
from tme_sim.view.data import Source


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ViewServer:
    """A Bokeh server for one :class:`Source` on ``http://localhost:<port>/`` (only this machine)."""

    def __init__(self, source: Source, port: int = 5006, host: str = "127.0.0.1") -> None:
        self.source = source
        self.host = host
        self.port = int(port) or free_port(host)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop = None
        self._server = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/"

    def _serve(self) -> None:
        from bokeh.application import Application
        from bokeh.application.handlers.function import FunctionHandler
        from bokeh.server.server import Server
        from tornado.ioloop import IOLoop

        for name in ("bokeh", "tornado"):  # closed tabs and reconnects are not the user's concern
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            asyncio.set_event_loop(asyncio.new_event_loop())
            self._loop = IOLoop.current()
            self._server = Server(
                {"/": Application(FunctionHandler(make_document(self.source)))},
                io_loop=self._loop,
                port=self.port,
                address=self.host,
                allow_websocket_origin=[f"localhost:{self.port}", f"127.0.0.1:{self.port}"],
                check_unused_sessions_milliseconds=5000,
                unused_session_lifetime_milliseconds=10000,
            )
            self._server.start()
        except BaseException as exc:  # e.g. the port is taken
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.start()

    def start_background(self) -> None:
        """Start serving in a daemon thread; returns once the port is open (or raises a TMEError)."""
        self._thread = threading.Thread(target=self._serve, name="tme-view", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise TMEError(f"tme view: cannot serve on {self.host}:{self.port} ({self._error}); try --port 0")

    def open_browser(self) -> None:
        webbrowser.open(self.url)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        if self._loop is not None and self._server is not None:
            loop, server = self._loop, self._server

            def _stop() -> None:
                server.stop()
                loop.stop()

            loop.add_callback(_stop)
        if self._thread is not None:
            self._thread.join(5)
