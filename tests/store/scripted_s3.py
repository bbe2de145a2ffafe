"""A real HTTP endpoint on 127.0.0.1 that answers like a failing S3 server and counts the requests it receives:
how the tests see how many attempts botocore really made."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """Answer ``status`` with S3 error ``code`` (and ``condition``, for 412) to the first ``failures`` requests
    (None: to all of them), then 200 with ``body``."""

    status: int
    code: str
    failures: int | None = None
    body: bytes = b""
    condition: str | None = None
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_reply(self, request: str) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append(request)
            failing = self.failures is None or len(self.requests) <= self.failures
        if not failing:
            return 200, self.body
        condition = f"<Condition>{self.condition}</Condition>" if self.condition else ""
        error = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{self.code}</Code><Message>scripted '
            f"{self.code}</Message>{condition}<RequestId>scripted</RequestId></Error>"
        )
        return self.status, error.encode()


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)  # read the upload before answering, as a real server does
            status, body = script.next_reply(f"{self.command} {self.path}")
            self.send_response(status)
            self.send_header("Content-Type", "application/xml" if status >= 300 else "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"0"')
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def scripted_s3(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free local port for the duration of the block; yields the endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
