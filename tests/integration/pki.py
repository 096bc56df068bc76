"""Throw-away certificates for the TLS tests, made with the ``openssl`` command line.

    ca, cert, key = ca_and_server(tmp_path)          # a CA, and a cert for 127.0.0.1 it signed
    cert, key = self_signed(tmp_path)                # one self-signed cert for 127.0.0.1

The files are PEM, the keys unencrypted, valid for two days. RSA 2048 unless ``key="ec"``
(P-256) is asked for.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

_NEW_KEY = {"rsa": ["-newkey", "rsa:2048"],
            "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]}


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory,
                   timeout=30)


def ca_and_server(directory: Path, *, key: str = "rsa") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (CN and IP SAN) signed by it, in
    ``directory``: (CA certificate, server certificate, server key)."""
    new_key = [*_NEW_KEY[key], "-nodes"]
    _openssl(directory, "req", "-x509", *new_key, "-days", "2", "-subj", "/CN=test ca",
             "-keyout", "ca.key", "-out", "ca.pem")
    _openssl(directory, "req", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
             "-out", "server.csr")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    _openssl(directory, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
             "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.cnf",
             "-out", "server.pem")
    return directory / "ca.pem", directory / "server.pem", directory / "server.key"


def self_signed(directory: Path, *, cn: str = "127.0.0.1",
                san: str = "IP:127.0.0.1") -> tuple[Path, Path]:
    """A self-signed RSA certificate for ``cn`` with subjectAltName ``san`` (openssl's
    syntax, e.g. ``IP:127.0.0.1,DNS:localhost``), in ``directory``: (certificate, key)."""
    _openssl(directory, "req", "-x509", *_NEW_KEY["rsa"], "-nodes", "-days", "2",
             "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}",
             "-keyout", "key.pem", "-out", "cert.pem")
    return directory / "cert.pem", directory / "key.pem"
