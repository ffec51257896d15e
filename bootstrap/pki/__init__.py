"""The PKI of a control plane: the certificate table, CAs, leaves, the service-account key and renewal.

Pure logic under a pki dir; no CLI and no configuration parsing. Callers build a
:class:`PkiSettings` and one :class:`KeySource` per run.
"""

from __future__ import annotations

from bootstrap.pki.expiration import (
    RENEWABLE_NAMES,
    ExpirationReport,
    check_expiration,
    render_text,
    renew,
    to_dict,
)
from bootstrap.pki.issue import CertificateAuthority, issue_client_cert
from bootstrap.pki.keys import KeySource, PrivateKey
from bootstrap.pki.settings import ALGORITHMS, PkiSettings
from bootstrap.pki.specs import CA_NAMES, CERT_NAMES, CERT_SPECS, LEAF_NAMES, AltNames, CertSpec
from bootstrap.pki.store import ensure_cert, ensure_sa, load_ca, verify_client_pair

__all__ = [
    "ALGORITHMS",
    "CA_NAMES",
    "CERT_NAMES",
    "CERT_SPECS",
    "LEAF_NAMES",
    "RENEWABLE_NAMES",
    "AltNames",
    "CertSpec",
    "CertificateAuthority",
    "ExpirationReport",
    "KeySource",
    "PkiSettings",
    "PrivateKey",
    "check_expiration",
    "ensure_cert",
    "ensure_sa",
    "issue_client_cert",
    "load_ca",
    "render_text",
    "renew",
    "to_dict",
    "verify_client_pair",
]
