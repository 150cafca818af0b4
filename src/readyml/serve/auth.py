"""Bearer-token checks for management calls (always) and prediction calls (optionally).

The token comes from an environment variable, never from ``readyml.yaml``; it is compared in
constant time and never logged.
"""

from __future__ import annotations

import hmac

from readyml.errors import Unauthorized
from readyml.serve._http import Request


class BearerAuth:
    """Check ``Authorization: Bearer <token>`` against the server's token.

    Args:
        token: The expected token; ``None`` refuses every protected call.
        env_name: The variable the token comes from (named in error messages).

    >>> from readyml.serve._http import Request
    >>> auth = BearerAuth(token="s3cret")
    >>> auth.check(Request({"method": "POST", "path": "/", "headers": [
    ...     (b"authorization", b"Bearer s3cret")]}))
    """

    def __init__(self, *, token: str | None, env_name: str = "READYML_SERVE_TOKEN") -> None:
        self.token = token
        self.env_name = env_name

    def check(self, request: Request) -> None:
        """Return if the request carries the token; raise :class:`Unauthorized` otherwise."""
        if not self.token:
            raise Unauthorized(
                f"{request.path}: expected a server started with {self.env_name} set (this "
                "call needs a bearer token), found none configured"
            )
        header = request.authorization
        if header is None:
            raise Unauthorized(
                f"{request.path}: expected an 'Authorization: Bearer <token>' header, found none"
            )
        scheme, _, given = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise Unauthorized(f"{request.path}: expected a valid bearer token, found another")
