"""The encryption of the ``kubeadm-certs`` Secret, byte-compatible with kubeadm's join.

A control-plane node that joins downloads the cluster's CAs and service-account key from that
Secret. Each value is sealed with AES-256-GCM under the 32-byte *certificate key* the user passes
as 64 hex characters: a random 12-byte nonce, then the ciphertext, then the 16-byte tag. The data
keys are the file names under the certificate directory with ``/`` turned into ``-``
(``etcd/ca.crt`` -> ``etcd-ca.crt``); with external etcd, its client files travel under fixed names.

Pure: no file is written here, and the key is never part of a message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

# Files under the certificate directory that a joining control-plane node needs (kubeadm's list).
SHARED_FILES = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.key",
    "sa.pub",
)
LOCAL_ETCD_FILES = ("etcd/ca.crt", "etcd/ca.key")
# With external etcd, the apiserver's etcd client files travel under these names instead.
EXTERNAL_ETCD_KEYS = ("external-etcd-ca.crt", "external-etcd.crt", "external-etcd.key")


class CertificateKeyError(ValueError):
    """The certificate key is malformed, or does not open the data (wrong key or tampered data)."""


def generate_key() -> str:
    """A fresh random certificate key, as the 64 hex characters users pass around."""
    return secrets.token_hex(KEY_BYTES)


def decode_key(key_hex: str) -> bytes:
    """The 32 key bytes of ``key_hex``; a :class:`CertificateKeyError` (never quoting it) otherwise."""
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise CertificateKeyError("the certificate key is not hex-encoded") from None
    if len(key) != KEY_BYTES:
        raise CertificateKeyError(
            f"the certificate key must be {KEY_BYTES} bytes ({2 * KEY_BYTES} hex characters)"
        )
    return key


def encrypt(data: bytes, key: bytes) -> bytes:
    """nonce || ciphertext || tag, as kubeadm's upload does (a fresh nonce every time)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def decrypt(blob: bytes, key: bytes) -> bytes:
    """The plaintext of ``blob``; :class:`CertificateKeyError` when the key does not open it."""
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise CertificateKeyError("the encrypted value is too short to hold a nonce and a tag")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
    except InvalidTag:
        raise CertificateKeyError("the data cannot be decrypted with this certificate key") from None


def data_key(relative: str) -> str:
    """The Secret data key of a file named relative to the certificate directory."""
    return relative.replace("/", "-")


@dataclass(frozen=True)
class ExternalEtcdFiles:
    """The apiserver's client files for an external etcd (absolute host paths; empty when unset)."""

    ca_file: str
    cert_file: str
    key_file: str


def files_to_share(cert_dir: Path, external: ExternalEtcdFiles | None) -> dict[str, Path]:
    """Data key -> the file whose content it carries (``cert_dir`` already resolved for this run)."""
    files = {data_key(name): cert_dir / name for name in SHARED_FILES}
    if external is None:
        files.update({data_key(name): cert_dir / name for name in LOCAL_ETCD_FILES})
    else:
        paths = (external.ca_file, external.cert_file, external.key_file)
        files.update({key: Path(path) for key, path in zip(EXTERNAL_ETCD_KEYS, paths, strict=True) if path})
    return files


def read_files(files: Mapping[str, Path]) -> dict[str, bytes]:
    """The content of each file; a missing one is empty, as kubeadm uploads it (external etcd without TLS)."""
    content = {}
    for key, path in files.items():
        try:
            content[key] = path.read_bytes()
        except FileNotFoundError:
            content[key] = b""
    return content


def seal(content: Mapping[str, bytes], key: bytes) -> dict[str, bytes]:
    """Every value encrypted; an empty value stays empty (kubeadm's join skips those)."""
    return {name: encrypt(data, key) if data else b"" for name, data in content.items()}


def open_all(sealed: Mapping[str, bytes], key: bytes) -> dict[str, bytes]:
    """Every value decrypted, or :class:`CertificateKeyError` naming the first that does not open."""
    opened = {}
    for name, blob in sealed.items():
        if not blob:
            opened[name] = b""
            continue
        try:
            opened[name] = decrypt(blob, key)
        except CertificateKeyError as exc:
            raise CertificateKeyError(f"{name}: {exc}") from None
    return opened


def holds(sealed: Mapping[str, bytes], content: Mapping[str, bytes], key: bytes) -> bool:
    """True when ``sealed`` opens with ``key`` to exactly ``content`` (same names, same bytes)."""
    if set(sealed) != set(content):
        return False
    try:
        return open_all(sealed, key) == dict(content)
    except CertificateKeyError:
        return False
