"""Standard Webhooks signatures (https://www.standardwebhooks.com, "Signature scheme").

The signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the signature is HMAC-SHA256 over it with
the secret's bytes, base64-encoded and prefixed with the version: ``v1,<base64>``. A secret written as
``whsec_<base64>`` (the spec's form, what most receivers generate; the padding may be left off) is base64-decoded
to get the key bytes; any other secret is used as its UTF-8 bytes, so a plain shared password works too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["SECRET_PREFIX", "secret_key", "sign"]

SECRET_PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    """The HMAC key for a configured secret. Raises ValueError when a whsec_ secret is not valid base64."""
    if secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        # Receivers' generators often drop the trailing "="; the Standard Webhooks libraries accept that.
        # A length of 1 modulo 4 is no base64 at all, padded or not, and stays refused below.
        if len(encoded) % 4 in (2, 3):
            encoded += "=" * (4 - len(encoded) % 4)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("a secret starting with 'whsec_' must continue with base64") from exc
        if not key:
            raise ValueError("the secret after 'whsec_' is empty")
        return key
    if not secret:
        raise ValueError("the webhook secret is empty")
    return secret.encode("utf-8")


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The value of the webhook-signature header for one request: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")
