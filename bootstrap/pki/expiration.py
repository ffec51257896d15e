"""``certs check-expiration`` and ``certs renew``: the leaf and CA expiry tables, and leaf renewal.

Renewal keeps everything but the key, serial and validity: subject, SANs and EKU are copied from the
existing certificate (kubeadm's rule: the certificate on disk is the authoritative source), and a new
key of the same type and size is generated. CAs and the service-account key are never renewed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bootstrap.errors import PkiError
from bootstrap.host.fs import write_atomic
from bootstrap.pki.issue import CertificateAuthority, cert_pem, new_signed_cert
from bootstrap.pki.keys import KeySource, PrivateKey, algorithm_of, generate_key, private_key_pem
from bootstrap.pki.kubeconfig_files import KUBECONFIG_MODE, KUBECONFIG_SPECS
from bootstrap.pki.settings import CERT_BACKDATE
from bootstrap.pki.specs import CA_NAMES, LEAF_NAMES, CertSpec, get_spec
from bootstrap.pki.store import DIR_MODE, cert_ekus, load_ca, read_cert, write_key_and_cert
from bootstrap.results import RESULT_API_VERSION, Outcome, host_path, rootfs_field

# Kubeconfig rows of the table (file names); all carry a client certificate signed by "ca". Not
# kubelet.conf: like kubeadm, its client certificate is the kubelet's to rotate.
RENEWABLE_KUBECONFIGS: tuple[str, ...] = tuple(
    sorted(spec.file for spec in KUBECONFIG_SPECS.values() if spec.name != "kubelet")
)
# The leaf rows, sorted like kubeadm's table.
RENEWABLE_NAMES: tuple[str, ...] = tuple(sorted((*LEAF_NAMES, *RENEWABLE_KUBECONFIGS)))


@dataclass(frozen=True)
class CaRow:
    """One row of the CA table; ``expires`` None means the certificate is missing."""

    name: str
    path: Path
    expires: datetime | None
    residual: str
    externally_managed: bool

    @property
    def missing(self) -> bool:
        return self.expires is None


@dataclass(frozen=True)
class CertRow(CaRow):
    """One row of the leaf table (a file, or a cert embedded in a kubeconfig), with its signing CA."""

    authority: str = ""


@dataclass(frozen=True)
class ExpirationReport:
    """Both tables of ``certs check-expiration``; the rows' paths lie under ``root`` (a rootfs)."""

    now: datetime
    certificates: list[CertRow]
    authorities: list[CaRow]
    root: Path | None = None


def residual_time(remaining: timedelta) -> str:
    """kubeadm's short human duration: ``<invalid>`` once expired, else ``45s``, ``5h``, ``364d``, ``9y``."""
    seconds = int(remaining.total_seconds())
    if seconds < -1:  # up to a second of clock noise still counts as "now"
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


# ---------------------------------------------------------------- kubeconfig access


def _load_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PkiError(f"{path}: cannot read kubeconfig: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        # Not the parser's message: it quotes the offending line, which may be key material.
        raise PkiError(f"{path}: not valid YAML ({type(exc).__name__})") from exc
    if not isinstance(doc, dict):
        raise PkiError(f"{path}: not a kubeconfig (expected a YAML mapping)")
    return doc


def _kubeconfig_user(doc: dict[str, Any], path: Path) -> dict[str, Any]:
    users = doc.get("users")
    if not isinstance(users, list) or not users or not isinstance(users[0], dict):
        raise PkiError(f"{path}: has no users[0] entry")
    user = users[0].get("user")
    if not isinstance(user, dict):
        raise PkiError(f"{path}: users[0].user is not a mapping")
    return user


def _embedded_cert(path: Path) -> x509.Certificate | None:
    """The client certificate embedded in kubeconfig ``path``; None if it has none embedded."""
    user = _kubeconfig_user(_load_kubeconfig(path), path)
    data = user.get("client-certificate-data")
    if not data:
        return None
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(data, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise PkiError(
            f"{path}: users[0].user.client-certificate-data is not a base64 PEM certificate"
        ) from exc


# ---------------------------------------------------------------- check-expiration


def _ca_externally_managed(pki_dir: Path, ca_name: str) -> bool:
    spec = get_spec(ca_name)
    return (pki_dir / spec.cert_file).exists() and not (pki_dir / spec.key_file).exists()


def _row_source(name: str, pki_dir: Path, kubeconfig_dir: Path) -> tuple[Path, str]:
    if name in RENEWABLE_KUBECONFIGS:
        return kubeconfig_dir / name, "ca"
    spec = get_spec(name)
    assert spec.ca is not None
    return pki_dir / spec.cert_file, spec.ca


def check_expiration(
    pki_dir: Path, kubeconfig_dir: Path, now: datetime, root: Path | None = None
) -> ExpirationReport:
    """Expiry of every leaf certificate and kubeconfig client certificate, and of the three CAs.

    ``root`` is the directory both directories were resolved under (``--rootfs``), so that the
    report can name host paths.
    """
    rows: list[CertRow] = []
    for name in RENEWABLE_NAMES:
        path, ca_name = _row_source(name, pki_dir, kubeconfig_dir)
        cert: x509.Certificate | None = None
        if path.exists():
            cert = _embedded_cert(path) if name in RENEWABLE_KUBECONFIGS else read_cert(path)
        expires = cert.not_valid_after_utc if cert is not None else None
        residual = residual_time(expires - now) if expires is not None else ""
        rows.append(
            CertRow(
                name, path, expires, residual, _ca_externally_managed(pki_dir, ca_name), authority=ca_name
            )
        )
    cas: list[CaRow] = []
    for ca_name in sorted(CA_NAMES):  # kubeadm lists ca, etcd-ca, front-proxy-ca
        path = pki_dir / get_spec(ca_name).cert_file
        expires = read_cert(path).not_valid_after_utc if path.exists() else None
        residual = residual_time(expires - now) if expires is not None else ""
        cas.append(CaRow(ca_name, path, expires, residual, _ca_externally_managed(pki_dir, ca_name)))
    return ExpirationReport(now, rows, cas, root)


def _expires_text(expires: datetime | None) -> str:
    # kubeadm's layout "Jan 02, 2006 15:04 MST"
    return expires.strftime("%b %d, %Y %H:%M UTC") if expires is not None else ""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("   ".join(cells).rstrip())
    return lines


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def render_text(report: ExpirationReport) -> str:
    """The two tables, aligned like kubeadm's; a missing certificate shows as ``!MISSING! <name>``."""
    leaf_rows = [
        [f"!MISSING! {r.name}", "", "", "", ""]
        if r.missing
        else [r.name, _expires_text(r.expires), r.residual, r.authority, _yes_no(r.externally_managed)]
        for r in report.certificates
    ]
    ca_rows = [
        [f"!MISSING! {r.name}", "", "", ""]
        if r.missing
        else [r.name, _expires_text(r.expires), r.residual, _yes_no(r.externally_managed)]
        for r in report.authorities
    ]
    lines = _table(
        ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"], leaf_rows
    )
    lines.append("")
    lines += _table(["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"], ca_rows)
    return "\n".join(lines) + "\n"


def _when(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def document(report: ExpirationReport) -> dict[str, Any]:
    """The ``certs check-expiration -o json|yaml`` document: host paths, and the rootfs they live in."""
    return {
        "apiVersion": RESULT_API_VERSION,
        "kind": "CertificateExpiration",
        "rootfs": rootfs_field(report.root),
        **to_dict(report),
    }


def to_dict(report: ExpirationReport) -> dict[str, Any]:
    """Both tables, JSON/YAML-ready, with host paths (no key material)."""
    return {
        "certificates": [
            {
                "name": r.name,
                "path": host_path(r.path, report.root),
                "missing": r.missing,
                "expirationDate": _when(r.expires),
                "residualTime": r.residual or None,
                "certificateAuthority": r.authority,
                "externallyManaged": r.externally_managed,
            }
            for r in report.certificates
        ],
        "certificateAuthorities": [
            {
                "name": r.name,
                "path": host_path(r.path, report.root),
                "missing": r.missing,
                "expirationDate": _when(r.expires),
                "residualTime": r.residual or None,
                "externallyManaged": r.externally_managed,
            }
            for r in report.authorities
        ],
    }


# ---------------------------------------------------------------- renew


def _new_key_like(cert: x509.Certificate, keys: KeySource) -> PrivateKey:
    """A new key of the same type and size as ``cert``'s, from ``keys`` when it makes that kind."""
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise PkiError(f"unsupported public key type {type(public).__name__}; expected RSA or ECDSA")
    algorithm = algorithm_of(public)
    return keys.take() if keys.algorithm == algorithm else generate_key(algorithm)


def _renewed(
    old: x509.Certificate, ca: CertificateAuthority, key: PrivateKey, now: datetime, validity: timedelta
) -> x509.Certificate:
    try:
        san: x509.SubjectAlternativeName | None = old.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        san = None
    return new_signed_cert(
        ca,
        key,
        subject=old.subject,
        usages=_eku_in_order(old),
        not_before=now - CERT_BACKDATE,
        validity=validity,
        now=now,
        san_extension=san,
    )


def _eku_in_order(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return sorted(cert_ekus(cert), key=lambda oid: oid.dotted_string)


def _signing_ca(pki_dir: Path, ca_name: str, name: str) -> CertificateAuthority:
    ca = load_ca(pki_dir, ca_name)
    if ca.external:
        raise PkiError(
            f'cannot renew "{name}": the "{ca_name}" CA key {pki_dir / get_spec(ca_name).key_file} is absent '
            "(externally managed CA); renew it with your external CA"
        )
    return ca


def _not_due(expires: datetime, now: datetime, window: timedelta | None) -> bool:
    return window is not None and expires - now > window


def _renew_cert(
    spec: CertSpec,
    pki_dir: Path,
    now: datetime,
    validity: timedelta,
    keys: KeySource,
    window: timedelta | None,
) -> Outcome:
    assert spec.ca is not None
    path = pki_dir / spec.cert_file
    old = read_cert(path)
    if _not_due(old.not_valid_after_utc, now, window):
        return Outcome(
            False,
            f'"{spec.name}" certificate is not due for renewal (expires {_when(old.not_valid_after_utc)})',
        )
    ca = _signing_ca(pki_dir, spec.ca, spec.name)
    key = _new_key_like(old, keys)
    cert = _renewed(old, ca, key, now, validity)
    return Outcome(True, f'"{spec.name}" certificate renewed', write_key_and_cert(pki_dir, spec, key, cert))


def _renew_kubeconfig(
    name: str,
    path: Path,
    pki_dir: Path,
    now: datetime,
    validity: timedelta,
    keys: KeySource,
    window: timedelta | None,
) -> Outcome:
    doc = _load_kubeconfig(path)
    user = _kubeconfig_user(doc, path)
    old = _embedded_cert(path)
    if old is None:
        raise PkiError(
            f"{path}: users[0].user has no client-certificate-data; "
            "only embedded client certificates can be renewed"
        )
    if _not_due(old.not_valid_after_utc, now, window):
        return Outcome(
            False,
            f"certificate embedded in {name} is not due for renewal "
            f"(expires {_when(old.not_valid_after_utc)})",
        )
    ca = _signing_ca(pki_dir, "ca", name)
    key = _new_key_like(old, keys)
    cert = _renewed(old, ca, key, now, validity)
    user["client-certificate-data"] = base64.b64encode(cert_pem(cert)).decode("ascii")
    user["client-key-data"] = base64.b64encode(private_key_pem(key)).decode("ascii")
    data = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False).encode()
    write_atomic(path, data, KUBECONFIG_MODE, DIR_MODE)
    return Outcome(True, f"certificate embedded in {name} renewed", [path])


def _refuse(name: str) -> PkiError | None:
    if (
        name in CA_NAMES
        or name in {"sa", "sa.key", "sa.pub"}
        or name.removesuffix(".crt") in {"ca", "front-proxy-ca"}
    ):
        return PkiError(f'"{name}" cannot be renewed: CAs and the service-account key are never renewed')
    if name == "kubelet.conf":
        return PkiError('"kubelet.conf" is not renewable: the kubelet rotates its own client certificate')
    if name != "all" and name not in RENEWABLE_NAMES:
        return PkiError(f"unknown certificate {name!r}; valid: {', '.join((*RENEWABLE_NAMES, 'all'))}")
    return None


def renew(
    name: str,
    pki_dir: Path,
    kubeconfig_dir: Path,
    settings_now: datetime,
    validity: timedelta,
    keys: KeySource,
    if_expiring_within: timedelta | None,
) -> list[Outcome]:
    """Renew the leaf certificate ``name`` (a row of the table) or ``all`` of them.

    Keeps subject, SANs and EKU, generates a new key of the same kind, signs with the existing CA,
    valid ``settings_now - 5 min .. settings_now + validity``. With ``if_expiring_within``, only
    certificates expiring within that window are renewed. With ``all``, missing files are skipped.
    """
    refused = _refuse(name)
    if refused is not None:
        raise refused
    names = RENEWABLE_NAMES if name == "all" else (name,)
    outcomes: list[Outcome] = []
    for row in names:
        path, _ = _row_source(row, pki_dir, kubeconfig_dir)
        if not path.exists():
            if name != "all":
                raise PkiError(f"{path}: missing, nothing to renew")
            outcomes.append(Outcome(False, f"{path} is missing, skipping renewal of {row}"))
            continue
        if row in RENEWABLE_KUBECONFIGS:
            outcomes.append(
                _renew_kubeconfig(row, path, pki_dir, settings_now, validity, keys, if_expiring_within)
            )
        else:
            outcomes.append(
                _renew_cert(get_spec(row), pki_dir, settings_now, validity, keys, if_expiring_within)
            )
    return outcomes
