"""The HTTP endpoint: /metrics (Prometheus text format), /healthz and /readyz (probes).

A stdlib threaded server on a daemon thread: a scrape never waits for the pipeline."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from binlog_tailer.errors import BinlogTailerError
from binlog_tailer.settings import ENV_PREFIX

log = logging.getLogger(__name__)


class Probes(Protocol):
    """What /healthz (live) and /readyz (ready) answer: (ok, why)."""

    def live(self) -> tuple[bool, str]: ...
    def ready(self) -> tuple[bool, str]: ...


class Endpoints:
    def __init__(self, host: str, port: int, health: Probes, registry: CollectorRegistry):
        handler = type("Handler", (_Handler,), {"health": health, "registry": registry})
        try:
            self._server = _Server((host, port), handler)
        except OSError as exc:
            raise BinlogTailerError(
                f"cannot listen on {host}:{port} for metrics and health ({exc.strerror or exc}):"
                f" free the port or set http.port [env {ENV_PREFIX}HTTP__PORT]"
                f" (http.enabled = false turns the endpoint off)"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="binlog-tailer-http", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        host, port = self.address
        log.info("metrics and health on http://%s:%d (/metrics, /healthz, /readyz)", host, port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("HTTP request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    health: Probes
    registry: CollectorRegistry

    def do_GET(self) -> None:
        try:
            self._route(self.path.split("?", 1)[0])
        except (BrokenPipeError, ConnectionResetError):  # the client left
            pass
        except Exception as exc:  # one line, never a traceback from the server's thread
            log.warning("answering %s failed: %r", self.path, exc)
            self._send(500, b"internal error\n", "text/plain")

    def _route(self, path: str) -> None:
        if path == "/metrics":
            self._send(200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, why = self.health.live() if path == "/healthz" else self.health.ready()
            self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # no access log
        pass
