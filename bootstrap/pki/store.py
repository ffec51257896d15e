"""Certificate and key files under the pki dir: loading, reuse checks, and ``ensure_*`` for the phases.

Rules (kubeadm's, made stricter where it is silent):
- an existing CA (cert + matching key, IsCA) is reused; a CA cert without its key is an external CA;
- an existing leaf is reused only if its key matches, it is signed by its CA, and its CN, O, EKU and
  SANs still satisfy the configuration; otherwise the error names the file, the problem and the fix,
  and nothing is overwritten;
- under an external CA nothing is ever issued: every leaf must be provided;
- the key is written before the certificate, so an interrupted run leaves at worst a key without a
  certificate, which the next run replaces (a certificate is never left without its key).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.errors import PkiError
from bootstrap.host.fs import write_atomic
from bootstrap.pki.issue import (
    CertificateAuthority,
    cert_pem,
    eku_oids,
    make_name,
    new_ca_cert,
    new_signed_cert,
)
from bootstrap.pki.keys import (
    KeySource,
    PrivateKey,
    generate_key,
    load_private_key_pem,
    normalize_algorithm,
    private_key_pem,
    public_key_der,
    public_key_pem,
)
from bootstrap.pki.settings import PkiSettings
from bootstrap.pki.specs import EKU_NAMES, AltNames, CertSpec, get_spec
from bootstrap.results import Outcome

KEY_MODE = 0o600
CERT_MODE = 0o644
PUB_MODE = 0o600  # kubeadm writes sa.pub with keyutil.WriteKey, hence 0600
DIR_MODE = 0o755

SA_KEY = "sa.key"
SA_PUB = "sa.pub"


# ---------------------------------------------------------------- reading


def read_cert(path: Path) -> x509.Certificate:
    """The first certificate in the PEM file ``path``; unreadable or invalid is a PkiError naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"{path}: cannot read certificate: {exc.strerror or exc}") from exc
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise PkiError(f"{path}: not a valid PEM certificate ({exc})") from exc


def read_key(path: Path) -> PrivateKey:
    """The PEM private key in ``path``; unreadable or invalid is a PkiError naming it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"{path}: cannot read private key: {exc.strerror or exc}") from exc
    return load_private_key_pem(data, str(path))


def subject_cn(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def subject_orgs(name: x509.Name) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def is_ca_cert(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def cert_ekus(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def cert_alt_names(cert: x509.Certificate) -> AltNames:
    """The certificate's SANs (DNS names and IPs)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return AltNames()
    ips = [ip for ip in san.get_values_for_type(x509.IPAddress) if not isinstance(ip, ipaddress._BaseNetwork)]
    return AltNames.build(san.get_values_for_type(x509.DNSName), ips)


def signed_by_problem(cert: x509.Certificate, ca_cert: x509.Certificate, ca_label: str) -> str | None:
    """None if ``cert`` was issued by ``ca_cert`` (issuer name and signature), else what is wrong."""
    if cert.issuer != ca_cert.subject:
        issuer, expected = cert.issuer.rfc4514_string(), ca_cert.subject.rfc4514_string()
        return f"issued by {issuer!r}, not by the {ca_label} CA ({expected!r})"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except InvalidSignature:
        return f"its signature does not verify with the {ca_label} CA's public key (signed by another CA)"
    except (ValueError, TypeError) as exc:
        return f"cannot be verified against the {ca_label} CA: {exc}"
    return None


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    return public_key_der(cert.public_key()) == public_key_der(key)  # type: ignore[arg-type]


# ---------------------------------------------------------------- CAs


def load_ca(pki_dir: Path, name: str = "ca") -> CertificateAuthority:
    """Load the CA ``name`` (``ca``, ``front-proxy-ca``, ``etcd-ca``); ``key`` is None for an external CA."""
    spec = get_spec(name)
    if not spec.is_ca:
        raise PkiError(f"{name!r} is not a certificate authority")
    cert_path, key_path = pki_dir / spec.cert_file, pki_dir / spec.key_file
    if not cert_path.exists():
        raise PkiError(
            f'{cert_path}: the "{name}" CA certificate is missing; run "bootstrap phase certs {name}" first'
        )
    cert = read_cert(cert_path)
    if not is_ca_cert(cert):
        raise PkiError(f"{cert_path}: not a CA certificate (basicConstraints CA:FALSE or absent)")
    key: PrivateKey | None = None
    if key_path.exists():
        key = read_key(key_path)
        if not key_matches(cert, key):
            raise PkiError(
                f"{key_path}: does not match the certificate {cert_path}; restore the matching key "
                "(a CA key cannot be replaced without re-issuing every certificate it signed)"
            )
    return CertificateAuthority(name, cert, key)


def _check_validity(cert: x509.Certificate, path: Path, now: datetime, fix: str) -> str | None:
    if cert.not_valid_after_utc <= now:
        return f"{path}: expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC; {fix}"
    return None


# ---------------------------------------------------------------- writing


def _new_key(settings: PkiSettings, keys: KeySource) -> PrivateKey:
    # The shared source is normally for the configured algorithm; never hand out a key of another kind.
    if keys.algorithm == normalize_algorithm(settings.encryption_algorithm):
        return keys.take()
    return generate_key(settings.encryption_algorithm)


def write_key_and_cert(pki_dir: Path, spec: CertSpec, key: PrivateKey, cert: x509.Certificate) -> list[Path]:
    """Write the key (0600) then the certificate (0644); return the paths written."""
    key_path, cert_path = pki_dir / spec.key_file, pki_dir / spec.cert_file
    written = []
    if write_atomic(key_path, private_key_pem(key), KEY_MODE, DIR_MODE):
        written.append(key_path)
    if write_atomic(cert_path, cert_pem(cert), CERT_MODE, DIR_MODE):
        written.append(cert_path)
    return written


def _san_line(spec: CertSpec, alt_names: AltNames) -> str:
    dns = " ".join(alt_names.dns_names)
    ips = " ".join(str(ip) for ip in alt_names.ips)
    return f"{spec.base} serving cert is signed for DNS names [{dns}] and IPs [{ips}]"


def _label(spec: CertSpec) -> str:
    return spec.base


def _ensure_ca(spec: CertSpec, settings: PkiSettings, pki_dir: Path, keys: KeySource) -> Outcome:
    cert_path, key_path = pki_dir / spec.cert_file, pki_dir / spec.key_file
    if cert_path.exists():
        ca = load_ca(pki_dir, spec.name)
        expired = _check_validity(
            ca.cert, cert_path, settings.now,
            "a CA cannot be renewed; replace the CA and every certificate it signed",
        )  # fmt: skip
        if expired:
            raise PkiError(expired)
        if ca.external:
            return Outcome(
                False,
                f'Using existing "{_label(spec)}" certificate authority '
                f"(external CA: {spec.key_file} is absent, certificates it signs must be provided)",
            )
        return Outcome(False, f'Using existing "{_label(spec)}" certificate authority')
    lines = [f'Generating "{_label(spec)}" certificate and key']
    if key_path.exists():
        lines.append(f"replacing {key_path}: a key without its certificate, left by an interrupted run")
    key = _new_key(settings, keys)
    cert = new_ca_cert(spec.cn(settings), key, settings)
    return Outcome(True, "\n".join(lines), write_key_and_cert(pki_dir, spec, key, cert))


def _leaf_problems(
    spec: CertSpec,
    settings: PkiSettings,
    cert: x509.Certificate,
    key: PrivateKey | None,
    ca: CertificateAuthority,
) -> tuple[list[str], bool]:
    """What is wrong with an existing leaf, and whether "certs renew" would fix it."""
    problems: list[str] = []
    renewable = True
    if key is not None and not key_matches(cert, key):
        problems.append(f"{spec.key_file} does not match the certificate's public key")
    signed = signed_by_problem(cert, ca.cert, ca.name)
    if signed:
        problems.append(signed)
    if is_ca_cert(cert):
        problems.append("it is a CA certificate (basicConstraints CA:TRUE), expected a leaf")
        renewable = False
    want_cn, have_cn = spec.cn(settings), subject_cn(cert.subject)
    if want_cn != have_cn:
        problems.append(f"CN is {have_cn!r}, expected {want_cn!r}")
        renewable = False
    want_o, have_o = sorted(spec.organizations), sorted(subject_orgs(cert.subject))
    if want_o != have_o:
        problems.append(f"O is {have_o}, expected {want_o}")
        renewable = False
    have_eku = cert_ekus(cert)
    missing_eku = [
        EKU_NAMES.get(u, u)
        for u, oid in zip(spec.usages, eku_oids(spec.usages), strict=True)
        if oid not in have_eku
    ]
    if missing_eku:
        problems.append(f"missing extended key usages [{', '.join(missing_eku)}]")
        renewable = False
    required, present = spec.sans(settings), cert_alt_names(cert)
    missing = [label for label in required.labels() if label not in set(present.labels())]
    if missing:
        problems.append(f"missing SANs [{', '.join(missing)}] required by the configuration")
        renewable = False  # renewal keeps the existing SANs, so it cannot add these
    return problems, renewable


def _leaf_fix(spec: CertSpec, renewable: bool) -> str:
    fix = f'delete {spec.cert_file} and {spec.key_file} and re-run "bootstrap phase certs {spec.name}"'
    if renewable:
        fix += f', or run "bootstrap certs renew {spec.name}"'
    return fix


def _ensure_leaf(spec: CertSpec, settings: PkiSettings, pki_dir: Path, keys: KeySource) -> Outcome:
    assert spec.ca is not None
    ca = load_ca(pki_dir, spec.ca)
    cert_path, key_path = pki_dir / spec.cert_file, pki_dir / spec.key_file
    label = _label(spec)
    if cert_path.exists():
        cert = read_cert(cert_path)
        key = read_key(key_path) if key_path.exists() else None
        if key is None and not ca.external:
            raise PkiError(
                f"{cert_path}: its private key {key_path} is missing; restore it, or {_leaf_fix(spec, True)}"
            )
        problems, renewable = _leaf_problems(spec, settings, cert, key, ca)
        if problems:
            if ca.external:
                fix = f'provide a {spec.cert_file} signed by the external "{ca.name}" CA'
            else:
                fix = _leaf_fix(spec, renewable)
            raise PkiError(f"{cert_path}: {'; '.join(problems)}; {fix}")
        renew_fix = f'run "bootstrap certs renew {spec.name}"' if not ca.external else "replace it"
        expired = _check_validity(cert, cert_path, settings.now, renew_fix)
        if expired:
            raise PkiError(expired)
        if key is None:
            return Outcome(
                False,
                f'Using existing "{label}" certificate (external CA; {key_path} is absent and '
                "must be provided before the control plane starts)",
            )
        return Outcome(False, f'Using existing "{label}" certificate and key')
    if ca.external:
        ca_key_path = pki_dir / get_spec(ca.name).key_file
        raise PkiError(
            f'{cert_path}: missing, and the "{ca.name}" CA key {ca_key_path} is absent '
            f"(external CA mode), so it cannot be generated; provide {spec.cert_file} and {spec.key_file} "
            f'signed by the external "{ca.name}" CA'
        )
    lines = [f'Generating "{label}" certificate and key']
    if key_path.exists():
        lines.append(f"replacing {key_path}: a key without its certificate, left by an interrupted run")
    alt_names = spec.sans(settings)
    if alt_names.dns_names or alt_names.ips:
        lines.append(_san_line(spec, alt_names))
    lines += [f"WARNING: {w}" for w in alt_names.warnings]
    key = _new_key(settings, keys)
    cert = new_signed_cert(
        ca,
        key,
        subject=make_name(spec.cn(settings), spec.organizations),
        usages=spec.usages,
        not_before=settings.not_before,
        validity=settings.cert_validity,
        now=settings.now,
        alt_names=alt_names,
    )
    return Outcome(True, "\n".join(lines), write_key_and_cert(pki_dir, spec, key, cert))


def ensure_cert(name: str, settings: PkiSettings, pki_dir: Path, keys: KeySource) -> Outcome:
    """Create the certificate ``name`` of the table, or check and reuse the existing one.

    Raises PkiError (naming the file, the problem and the fix) when an existing file is unusable;
    never overwrites an existing certificate.
    """
    spec = get_spec(name)
    if spec.etcd and settings.external_etcd:
        return Outcome(False, f'External etcd mode: skipping "{spec.name}" certificate')
    if spec.is_ca:
        return _ensure_ca(spec, settings, pki_dir, keys)
    return _ensure_leaf(spec, settings, pki_dir, keys)


# ---------------------------------------------------------------- service account key


def _read_public_der(path: Path) -> bytes:
    try:
        public = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: not a valid PEM public key ({exc})") from exc
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ensure_sa(settings: PkiSettings, pki_dir: Path, keys: KeySource) -> Outcome:
    """Create ``sa.key``/``sa.pub``, or reuse an existing ``sa.key`` (re-deriving a missing ``sa.pub``)."""
    key_path, pub_path = pki_dir / SA_KEY, pki_dir / SA_PUB
    if key_path.exists():
        key = read_key(key_path)
        if pub_path.exists():
            if _read_public_der(pub_path) != public_key_der(key):
                raise PkiError(
                    f"{pub_path}: does not match {key_path}; delete {SA_PUB} and re-run "
                    '"bootstrap phase certs sa" to derive it from the key'
                )
            return Outcome(False, 'Using the existing "sa" key')
        write_atomic(pub_path, public_key_pem(key), PUB_MODE, DIR_MODE)
        return Outcome(
            True, f'Using the existing "sa" key\nwrote the missing {SA_PUB} derived from it', [pub_path]
        )
    lines = ['Generating "sa" key and public key']
    if pub_path.exists():
        lines.append(f"replacing {pub_path}: a public key without its private key")
    key = _new_key(settings, keys)
    files = []
    if write_atomic(key_path, private_key_pem(key), KEY_MODE, DIR_MODE):
        files.append(key_path)
    if write_atomic(pub_path, public_key_pem(key), PUB_MODE, DIR_MODE):
        files.append(pub_path)
    return Outcome(True, "\n".join(lines), files)


# ---------------------------------------------------------------- client pairs (kubeconfig reuse)


def verify_client_pair(
    ca_cert: x509.Certificate,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    common_name: str | None = None,
    organizations: Sequence[str] | None = None,
) -> str | None:
    """None if the PEM pair is a usable client credential under ``ca_cert``, else what is wrong.

    Checks: both parse, the key matches, signed by the CA, clientAuth EKU, and when given the
    expected CN and organizations (as a set). Not its expiry: an expired kubeconfig is reused, unlike
    an expired leaf certificate; changing that is a behaviour change, left out of the issue 11 clean-up.
    """
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as exc:
        return f"the client certificate is not a valid PEM certificate ({exc})"
    try:
        key = load_private_key_pem(key_pem, "client key")
    except PkiError as exc:
        return str(exc.message)
    if not key_matches(cert, key):
        return "the client key does not match the client certificate"
    signed = signed_by_problem(cert, ca_cert, "cluster")
    if signed:
        return (
            f"the client certificate is {signed}"
            if signed.startswith("issued")
            else f"the client certificate: {signed}"
        )
    if ExtendedKeyUsageOID.CLIENT_AUTH not in cert_ekus(cert):
        return "the client certificate lacks the clientAuth extended key usage"
    if common_name is not None and subject_cn(cert.subject) != common_name:
        return f"the client certificate's CN is {subject_cn(cert.subject)!r}, expected {common_name!r}"
    if organizations is not None and sorted(subject_orgs(cert.subject)) != sorted(organizations):
        have = ", ".join(sorted(subject_orgs(cert.subject))) or "empty"
        return f"the client certificate's O is {have}, expected {', '.join(sorted(organizations)) or 'none'}"
    return None
