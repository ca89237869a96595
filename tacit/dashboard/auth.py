"""Signing in to the dashboard with a tenant's API key.

Scripts send the key as the gateway and the scoring service take it (``Authorization: Bearer`` or
``X-API-Key``); a browser signs in once with a form, and the key is kept in an HTTP-only, same-site cookie.
Either way the key goes through the same check (:func:`tacit.core.api_auth.authenticate_reader`), so a revoked key
stops working on the dashboard as everywhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from tacit.core.api_auth import api_key_header, authenticate_reader, bearer

COOKIE = "tacit_dashboard_key"


def tenant_of(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> str:
    """The tenant of the key in the headers, else of the one in the sign-in cookie."""
    cookie = request.cookies.get(COOKIE)
    if credentials is None and header_key is None and cookie:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=cookie)
    return authenticate_reader(request, credentials, header_key)


Tenant = Annotated[str, Depends(tenant_of)]
