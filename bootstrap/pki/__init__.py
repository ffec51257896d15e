"""The PKI of a control plane: the certificate table, CAs, leaves, the service-account key and renewal.

Pure logic under a pki dir; no CLI and no configuration parsing. Callers build a
:class:`PkiSettings` and one :class:`KeySource` per run.

Names are re-exported lazily: importing ``bootstrap.pki.specs`` (the table the phase tree is built
from) must not pull in ``cryptography``, so that ``bootstrap --help`` starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from bootstrap.pki.settings import PkiSettings
    from bootstrap.pki.specs import CA_NAMES, CERT_NAMES, CERT_SPECS, LEAF_NAMES, AltNames, CertSpec
    from bootstrap.pki.store import ensure_cert, ensure_sa, load_ca, verify_client_pair

_EXPORTS = {
    **dict.fromkeys(
        ("RENEWABLE_NAMES", "ExpirationReport", "check_expiration", "render_text", "renew", "to_dict"),
        "expiration",
    ),
    "CertificateAuthority": "issue",
    "issue_client_cert": "issue",
    "KeySource": "keys",
    "PrivateKey": "keys",
    "PkiSettings": "settings",
    "CA_NAMES": "specs",
    "CERT_NAMES": "specs",
    "CERT_SPECS": "specs",
    "LEAF_NAMES": "specs",
    "AltNames": "specs",
    "CertSpec": "specs",
    "ensure_cert": "store",
    "ensure_sa": "store",
    "load_ca": "store",
    "verify_client_pair": "store",
}

__all__ = [
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bootstrap.pki.{module}"), name)
