"""The request body cap of the HTTP services (gateway, scoring service), enforced while the body arrives.

Checked in the ASGI layer, before FastAPI reads and parses anything: a declared ``Content-Length`` over the
cap is refused at once, and a body sent without one (chunked) is refused as soon as it passes the cap.
Without it a single 100 MB request is read into memory and parsed on the event loop, and every other
request waits for it.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``; ``setting`` names the knob in the answer."""

    def __init__(self, app: ASGIApp, max_bytes: int, setting: str) -> None:
        self.app, self.max_bytes, self.setting = app, max_bytes, setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self.refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise self.too_large()  # inside the route: FastAPI turns it into the 413 answer
            return message

        await self.app(scope, counted, send)

    def too_large(self) -> HTTPException:
        return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE,
                             f"The body is larger than {self.max_bytes} bytes ({self.setting}).")

    async def refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        from fastapi.responses import JSONResponse

        error = self.too_large()
        await JSONResponse({"detail": error.detail}, status_code=error.status_code)(scope, receive, send)
