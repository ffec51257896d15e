"""Certificates whose SANs the configuration changed, and their re-issue.

A serving certificate is compared with the SANs the wanted configuration requires (the same table
``phase certs`` issues from). When they differ it is re-issued: same subject and usages, the new SANs,
a new key of the same type as the old one, signed by the existing CA. Only the certificate changes; the
component that serves it is restarted by the apply that asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bootstrap.config import Config
from bootstrap.errors import PkiError
from bootstrap.pki.from_config import pki_settings_from_config
from bootstrap.pki.issue import new_signed_cert
from bootstrap.pki.keys import algorithm_of, generate_key
from bootstrap.pki.specs import AltNames, get_spec
from bootstrap.pki.store import cert_alt_names, load_ca, read_cert, write_key_and_cert

# Serving certificates whose SANs come from the configuration -> the static pod that serves them.
SERVING: dict[str, str] = {"apiserver": "kube-apiserver", "etcd-server": "etcd", "etcd-peer": "etcd"}


@dataclass(frozen=True)
class SanChange:
    """One certificate whose SANs must change: its name, the component using it, the SANs."""

    name: str
    component: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    wanted: AltNames

    @property
    def files(self) -> tuple[str, str]:
        spec = get_spec(self.name)
        return spec.cert_file, spec.key_file

    def text(self) -> str:
        parts = [f"+{s}" for s in self.added] + [f"-{s}" for s in self.removed]
        return f'"{self.name}" certificate SANs {" ".join(parts)}'

    def to_dict(self) -> dict[str, Any]:
        return {
            "certificate": self.name,
            "component": self.component,
            "sansAdded": list(self.added),
            "sansRemoved": list(self.removed),
        }


def san_changes(cfg: Config, pki_dir: Path, now: datetime) -> list[SanChange]:
    """The serving certificates under ``pki_dir`` whose SANs differ from what ``cfg`` requires."""
    settings = pki_settings_from_config(cfg, now)
    changes = []
    for name, component in SERVING.items():
        spec = get_spec(name)
        if spec.etcd and cfg.external_etcd:
            continue
        path = pki_dir / spec.cert_file
        if not path.exists():
            continue  # nothing to compare: `phase certs` creates it
        wanted = spec.sans(settings)
        have = cert_alt_names(read_cert(path)).labels()
        want = wanted.labels()
        added = tuple(s for s in want if s not in have)
        removed = tuple(s for s in have if s not in want)
        if added or removed:
            changes.append(SanChange(name, component, added, removed, wanted))
    return changes


def reissue(change: SanChange, pki_dir: Path, cfg: Config, now: datetime) -> list[Path]:
    """Re-issue ``change``'s certificate with its wanted SANs (see the module docstring)."""
    spec = get_spec(change.name)
    assert spec.ca is not None
    old = read_cert(pki_dir / spec.cert_file)
    ca = load_ca(pki_dir, spec.ca)
    if ca.external:
        raise PkiError(
            f'cannot re-issue "{change.name}" with new SANs: the "{spec.ca}" CA key is absent '
            "(externally managed CA); issue it with your external CA"
        )
    settings = pki_settings_from_config(cfg, now)
    key = generate_key(algorithm_of(old.public_key()))  # type: ignore[arg-type]
    cert = new_signed_cert(
        ca,
        key,
        subject=old.subject,
        usages=spec.usages,
        not_before=settings.not_before,
        validity=settings.cert_validity,
        now=now,
        alt_names=change.wanted,
    )
    return write_key_and_cert(pki_dir, spec, key, cert)
