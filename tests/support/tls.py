"""Throw-away TLS certificates for tests that run real TLS servers on 127.0.0.1.

    cert = self_signed(tmp_path_factory.mktemp("tls"))              # names localhost and 127.0.0.1
    server = cert.server_context()                                  # give to the test server
    client = ssl.create_default_context(cafile=cert.cert)           # trusts exactly this certificate

The certificate is its own CA (self-signed), valid for a day, with the names in subjectAltName (what
hostname verification checks; the CN is ignored by modern clients). It is made with the `openssl` command,
so no extra Python package is needed; a test is skipped, with the reason, where that command is missing.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["SelfSigned", "self_signed"]


@dataclass(frozen=True)
class SelfSigned:
    cert: Path  # PEM certificate; also the CA file a client must trust
    key: Path  # PEM private key, unencrypted

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(
    folder: Path, *, dns: Sequence[str] = ("localhost",), ips: Sequence[str] = ("127.0.0.1",)
) -> SelfSigned:
    """Make a self-signed certificate and key in `folder` for the given DNS names and IP addresses."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    names = [f"DNS:{name}" for name in dns] + [f"IP:{ip}" for ip in ips]
    if not names:
        raise ValueError("a certificate needs at least one DNS name or IP address")
    cert, key = folder / "cert.pem", folder / "key.pem"
    # An EC key: as good as RSA for a test and made in a few milliseconds instead of a few hundred.
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={(list(dns) or list(ips))[0]}",
            "-addext",
            "subjectAltName=" + ",".join(names),
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return SelfSigned(cert, key)
