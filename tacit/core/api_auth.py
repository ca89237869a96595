"""The FastAPI dependency that turns a request's API key into its tenant, shared by the gateway and the
scoring service.

A key comes as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``; both are declared as security
schemes, so ``/docs`` offers to send one. A missing or unknown key is a 401; a revoked one a 403, because
the caller did prove who they were, and the answer should tell them to ask for a new key rather than to
check the one they have.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tacit.core.apikeys import KeyVerifier

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer tk_...")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: tk_...")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> str:
    """The tenant of the request's key, checked with the app's ``state.api_keys`` (a :class:`KeyVerifier`).

    A plain function: FastAPI runs it on its thread pool, so a cache miss's query never blocks the loop.
    """
    keys: KeyVerifier = request.app.state.api_keys
    presented = credentials.credentials if credentials is not None else header_key
    if presented is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Send an API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'; "
            "`tacit keys create --tenant T` makes one.",
            headers=CHALLENGE,
        )
    stored = keys.lookup(presented)
    if stored is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "The API key is not valid.", headers=CHALLENGE)
    if stored.revoked_at is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"API key {stored.id} was revoked at {stored.revoked_at:%Y-%m-%d %H:%M:%S %Z}; ask for a new one.",
        )
    return stored.tenant


KeyTenant = Annotated[str, Depends(authenticate)]
