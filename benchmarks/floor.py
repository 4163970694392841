"""The send floor: what the official `sendgrid` client alone takes to push the same
requests to a local server that does nothing but read them and answer 202.

A digest run cannot be faster than this on the same machine, so benchmarks report their
wall time as a multiple of it, measured in the same run (machines and loads differ).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sendgrid import SendGridAPIClient


class Nothing(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def nothing_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Nothing)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def send_floor(bodies: Sequence[dict[str, Any]], concurrency: int = 4) -> float:
    """Seconds for the official client to POST `bodies` with `concurrency` requests in
    flight (digest's default `sendgrid.concurrency`), one client per thread."""
    local = threading.local()
    with nothing_server() as url:

        def post(body: dict[str, Any]) -> None:
            if not hasattr(local, "client"):
                local.client = SendGridAPIClient("SG.floor", host=url)
            local.client.client.mail.send.post(request_body=body)

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, bodies))
        return time.perf_counter() - started
