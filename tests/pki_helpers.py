"""Helpers for the PKI tests: settings with test defaults, generating a whole PKI, file snapshots."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bootstrap.pki import (
    CERT_NAMES,
    KeySource,
    PkiSettings,
    ensure_cert,
    ensure_sa,
    issue_client_cert,
    load_ca,
)
from bootstrap.results import Outcome

NODE = "cp1"
ADDRESS = "10.0.0.1"
NOW = datetime.now(UTC).replace(microsecond=0)


def make_settings(**overrides: Any) -> PkiSettings:
    """Settings of a default single-node cluster; keyword arguments replace fields."""
    base = PkiSettings(
        node_name=NODE,
        advertise_address=ADDRESS,
        control_plane_endpoint="",
        service_subnet="10.96.0.0/12",
        dns_domain="cluster.local",
        apiserver_cert_sans=(),
        etcd_server_cert_sans=(),
        etcd_peer_cert_sans=(),
        external_etcd=False,
        encryption_algorithm="RSA-2048",
        cert_validity=timedelta(days=365),
        ca_validity=timedelta(days=3650),
        now=NOW,
    )
    return dataclasses.replace(base, **overrides)


def generate_all(pki_dir: Path, settings: PkiSettings, names: tuple[str, ...] = CERT_NAMES) -> list[Outcome]:
    """Run every certs phase (and sa) in order, with keys prefetched in parallel like a real run."""
    with KeySource(settings.encryption_algorithm) as keys:
        keys.prefetch(len(names) + 1)
        outcomes = [ensure_cert(name, settings, pki_dir, keys) for name in names]
        outcomes.append(ensure_sa(settings, pki_dir, keys))
    return outcomes


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory``: relative path -> (content, mtime_ns)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def contents(directory: Path) -> dict[str, bytes]:
    return {name: data for name, (data, _) in snapshot(directory).items()}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(
    path: Path, pki_dir: Path, common_name: str, organizations: tuple[str, ...], settings: PkiSettings
) -> None:
    """A minimal kubeconfig with a client cert signed by ``pki_dir``'s ca, as the kubeconfig phase writes."""
    ca = load_ca(pki_dir)
    with KeySource(settings.encryption_algorithm) as keys:
        cert_pem, key_pem = issue_client_cert(ca, common_name, organizations, settings, keys)
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubernetes",
                "cluster": {
                    "certificate-authority-data": b64((pki_dir / "ca.crt").read_bytes()),
                    "server": f"https://{ADDRESS}:6443",
                },
            }
        ],
        "contexts": [
            {"name": f"{common_name}@kubernetes", "context": {"cluster": "kubernetes", "user": common_name}}
        ],
        "current-context": f"{common_name}@kubernetes",
        "users": [
            {
                "name": common_name,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)
