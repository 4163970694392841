"""A local feed server on 127.0.0.1 for the feed tests and benchmark.

Each path is a `Route`: a body with its type and validators (it answers `If-None-Match`
and `If-Modified-Since` with 304), a redirect, scripted statuses (`fail_first` answers
5xx that many times first) or a delay before the answer. Every request is recorded with
its headers::

    with FeedServer() as server:
        server.route("/feed.xml", Route(body, "application/rss+xml", etag='"v1"'))
        load_feeds([FeedSource(server.url + "/feed.xml")], ...)
        assert server.requests[0].headers["User-Agent"].startswith("digest/")
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/xml"
    etag: str | None = None
    last_modified: str | None = None
    redirect: str | None = None  # a Location: answered with 302
    status: int = 200
    fail_first: int = 0  # answer `fail_status` this many times, then normally
    fail_status: int = 503
    delay: float = 0.0  # seconds before answering
    length: bool = True  # send Content-Length
    encoding: str | None = None  # a Content-Encoding the body is already in
    served: int = 0


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class FeedServer:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)

    def route(self, path: str, route: Route) -> Route:
        self.routes[path] = route
        return route

    def __enter__(self) -> FeedServer:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def hits(self, path: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.path == path]


def handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            server.requests.append(Seen(self.path, dict(self.headers.items())))
            route = server.routes.get(self.path)
            if route is None:
                return self.answer(404, b"not found")
            route.served += 1
            if route.delay:
                time.sleep(route.delay)
            if route.served <= route.fail_first:
                return self.answer(route.fail_status, b"try later")
            if route.redirect:
                return self.answer(302, b"", {"Location": route.redirect})
            if not_modified(route, self.headers):
                return self.answer(304, b"", validators(route))
            encoding = {"Content-Encoding": route.encoding} if route.encoding else {}
            return self.answer(route.status, route.body, {
                "Content-Type": route.content_type, **encoding, **validators(route)},
                length=route.length)

        def answer(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                   *, length: bool = True) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if length:
                self.send_header("Content-Length", str(len(body)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if status != 304:  # the client may stop reading (a size cap)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

    return Handler


def validators(route: Route) -> dict[str, str]:
    found = {"ETag": route.etag, "Last-Modified": route.last_modified}
    return {name: value for name, value in found.items() if value}


def not_modified(route: Route, headers: Any) -> bool:
    if route.etag and headers.get("If-None-Match") == route.etag:
        return True
    return bool(route.last_modified and not route.etag
                and headers.get("If-Modified-Since") == route.last_modified)
