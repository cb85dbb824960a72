"""A size limit on every request body that is not a streamed upload.

FastAPI reads a JSON body whole into memory before validating it, so without this a client
could post gigabytes to /v1/jobs. Uploads are exempt: `service.uploads` streams them to
disk and enforces `max_upload_bytes` itself.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.problems import PayloadTooLarge, problem_response
from service.uploads import DRAIN_BYTES

MAX_JSON_BODY_BYTES = 1024 * 1024


class BodyLimit:
    def __init__(
        self, app: ASGIApp, exempt: frozenset[tuple[str, str]], max_bytes: int = MAX_JSON_BODY_BYTES
    ) -> None:
        self.app = app
        self.exempt = exempt
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        if self._declared_size(scope) > self.max_bytes:
            await _drain(receive, DRAIN_BYTES)
            response = problem_response(
                413, self._message(), "payload_too_large", headers={"Connection": "close"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                # An HTTPException: FastAPI's body reader lets it through to the handlers.
                raise PayloadTooLarge(self._message())
            return message

        return counted

    def _message(self) -> str:
        return f"request bodies are limited to {self.max_bytes} bytes (uploads excepted)"

    @staticmethod
    def _declared_size(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                return int(value) if value.isdigit() else 0
        return 0


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the body (up to `budget`) so the 413 is not lost to a TCP reset."""
    while budget > 0:
        message = await receive()
        budget -= len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
