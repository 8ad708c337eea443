"""Bearer-token auth for ``seeknal serve`` (HTTP and Arrow Flight): a constant-time compare."""

from __future__ import annotations

import hmac
import ipaddress

from seeknal_flow.errors import ServeError

TOKEN_ENV = "SEEKNAL_SERVE_TOKEN"


def authorized(header: bytes | str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value carries ``Bearer <token>`` (always True without a token).

    >>> authorized(b"Bearer s3", "s3"), authorized(b"Bearer no", "s3"), authorized(None, None)
    (True, False, True)
    """
    if not token:
        return True
    if header is None:
        return False
    if isinstance(header, str):
        header = header.encode("latin-1", "replace")
    scheme, _, given = header.partition(b" ")
    # compare_digest takes as long for a wrong token of the same length as for the right one
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode())


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1`` or ``localhost``.

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0")
    (True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_token_off_loopback(host: str, token: str | None, what: str = "--host") -> None:
    """Refuse to serve a non-loopback address without a token."""
    if not token and not is_loopback(host):
        raise ServeError(f"refusing to serve {what} {host} without a token: pass --token T or set {TOKEN_ENV} "
                         "(clients then send 'Authorization: Bearer T')")
