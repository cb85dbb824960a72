"""A real webhook receiver for the tests: an HTTP server on 127.0.0.1 in a thread that
records every POST and answers from a per-path plan of status codes (then 200)."""

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.processes import free_port


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    plans: dict[str, list[int]] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """Answer the next POSTs to `path` with these statuses, then 200."""
        self.plans[path] = list(statuses)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(got := self.at(path)) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{path}: {len(self.at(path))} POST(s) after {timeout:.0f}s")

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(self.path, headers, body))
                    plan = receiver.plans.get(self.path, [])
                    status = plan.pop(0) if plan else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def new_secret() -> str:
    """As the API docs say to make one."""
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signature_verifies(secret: str, post: Received) -> bool:
    """The receiver's check, from the Standard Webhooks text: HMAC-SHA256 keyed by the base64
    part of the secret over `{webhook-id}.{webhook-timestamp}.{raw body}`, compared in
    constant time with each `v1,` entry of the header."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{post.headers['webhook-id']}.{post.headers['webhook-timestamp']}.".encode()
    expected = base64.b64encode(hmac.new(key, signed + post.body, hashlib.sha256).digest())
    return any(
        hmac.compare_digest(entry.removeprefix("v1,").encode(), expected)
        for entry in post.headers["webhook-signature"].split(" ")
        if entry.startswith("v1,")
    )
