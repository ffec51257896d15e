"""Locating the real tools the tests use; a missing tool is a failure, never a skip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def tool(name: str) -> str:
    """The path of ``name``: next to this Python (the venv's console scripts) first, then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed; .ci/test installs it")
    return found


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def openssl_subject(cert_pem: bytes) -> str:
    """The subject line as ``openssl x509 -noout -subject -nameopt RFC2253`` prints it."""
    proc = subprocess.run(
        [tool("openssl"), "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
        input=cert_pem,
        capture_output=True,
        check=True,
    )
    return proc.stdout.decode().strip().removeprefix("subject=")
