"""Building and signing certificates the way kubeadm (Go's crypto/x509) does.

Extensions, in Go's order: KeyUsage (critical), ExtendedKeyUsage, BasicConstraints (critical),
SubjectKeyIdentifier (CAs only, as Go generates it only for CAs), AuthorityKeyIdentifier (leaves:
the issuer's SKI; Go omits it on self-signed certs), SubjectAlternativeName. The subject carries the
organizations as one RDN before the common name, like Go's ``pkix.Name``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID, ObjectIdentifier

from bootstrap.errors import PkiError
from bootstrap.pki.keys import KeySource, PrivateKey, PublicKey, private_key_pem
from bootstrap.pki.settings import CERT_BACKDATE, PkiSettings
from bootstrap.pki.specs import CLIENT_AUTH, AltNames

# Go's x509 draws serials in [1, MaxInt64) for kubeadm.
_MAX_SERIAL = 2**63 - 1


def eku_oids(usages: Sequence[ObjectIdentifier | str]) -> list[ObjectIdentifier]:
    """Extended key usages as OID objects (the spec table keeps them as dotted strings)."""
    return [u if isinstance(u, ObjectIdentifier) else ObjectIdentifier(u) for u in usages]


@dataclass(frozen=True)
class CertificateAuthority:
    """A loaded CA: its certificate and, unless externally managed, its private key."""

    name: str
    cert: x509.Certificate
    key: PrivateKey | None

    @property
    def external(self) -> bool:
        """True when the CA key is absent: certificates under it must be provided, never issued."""
        return self.key is None


def new_serial() -> int:
    """A random serial number in [1, 2^63 - 1]."""
    return secrets.randbelow(_MAX_SERIAL) + 1


def make_name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    """Subject/issuer name in Go's order: O (one RDN holding every organization), then CN."""
    rdns: list[x509.RelativeDistinguishedName] = []
    if organizations:
        rdns.append(
            x509.RelativeDistinguishedName(
                [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
            )
        )
    rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
    return x509.Name(rdns)


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    # Go picks the hash from the signer: SHA-256 for RSA and P-256, SHA-384 for P-384.
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    # kubeadm sets KeyEncipherment for ECDSA keys too; kept for fidelity.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _san_extension(alt_names: AltNames) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = [x509.DNSName(d) for d in alt_names.dns_names]
    general += [x509.IPAddress(ip) for ip in alt_names.ips]
    return x509.SubjectAlternativeName(general)


def _utc_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def build_certificate(
    *,
    subject: x509.Name,
    public_key: PublicKey,
    signer_key: PrivateKey,
    issuer: x509.Certificate | None,
    not_before: datetime,
    not_after: datetime,
    is_ca: bool,
    usages: Sequence[ObjectIdentifier | str] = (),
    alt_names: AltNames | None = None,
    san_extension: x509.SubjectAlternativeName | None = None,
) -> x509.Certificate:
    """Sign one certificate. ``issuer`` None means self-signed (``signer_key`` is then the subject's key)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(_utc_seconds(not_before))
        .not_valid_after(_utc_seconds(not_after))
        .add_extension(_key_usage(is_ca), critical=True)
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku_oids(usages)), critical=False)
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    if is_ca:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    if issuer is not None:
        try:
            issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            issuer_ski = None
        if issuer_ski:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier(issuer_ski, None, None), critical=False
            )
    if san_extension is None and alt_names is not None and (alt_names.dns_names or alt_names.ips):
        san_extension = _san_extension(alt_names)
    if san_extension is not None:
        builder = builder.add_extension(san_extension, critical=False)
    return builder.sign(signer_key, _signature_hash(signer_key))


def new_ca_cert(common_name: str, key: PrivateKey, settings: PkiSettings) -> x509.Certificate:
    """A self-signed CA certificate valid from now - 5 min to now + ca_validity, DNS SAN = CN."""
    return build_certificate(
        subject=make_name(common_name),
        public_key=key.public_key(),
        signer_key=key,
        issuer=None,
        not_before=settings.now - CERT_BACKDATE,
        not_after=settings.now + settings.ca_validity,
        is_ca=True,
        alt_names=AltNames.build([common_name], []),
    )


def require_signing_key(ca: CertificateAuthority) -> PrivateKey:
    """The CA's key, or an error explaining that an external CA cannot issue certificates."""
    if ca.key is None:
        raise PkiError(
            f'the "{ca.name}" CA key is absent (external CA mode): bootstrap cannot issue certificates '
            "signed by it; provide the certificates signed by your external CA"
        )
    return ca.key


def new_signed_cert(
    ca: CertificateAuthority,
    key: PrivateKey,
    *,
    subject: x509.Name,
    usages: Sequence[ObjectIdentifier | str],
    not_before: datetime,
    validity: timedelta,
    now: datetime,
    alt_names: AltNames | None = None,
    san_extension: x509.SubjectAlternativeName | None = None,
) -> x509.Certificate:
    """A leaf certificate for ``key`` signed by ``ca``, valid ``not_before`` .. ``now + validity``."""
    return build_certificate(
        subject=subject,
        public_key=key.public_key(),
        signer_key=require_signing_key(ca),
        issuer=ca.cert,
        not_before=not_before,
        not_after=now + validity,
        is_ca=False,
        usages=usages,
        alt_names=alt_names,
        san_extension=san_extension,
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """The ``CERTIFICATE`` PEM block of ``cert``."""
    return cert.public_bytes(Encoding.PEM)


def issue_client_cert(
    ca: CertificateAuthority,
    common_name: str,
    organizations: Sequence[str],
    settings: PkiSettings,
    keys: KeySource,
) -> tuple[bytes, bytes]:
    """A new clientAuth certificate and key (both PEM) signed by ``ca``, e.g. for a kubeconfig user."""
    require_signing_key(ca)
    key = keys.take()
    cert = new_signed_cert(
        ca,
        key,
        subject=make_name(common_name, organizations),
        usages=(CLIENT_AUTH,),
        not_before=settings.not_before,
        validity=settings.cert_validity,
        now=settings.now,
    )
    return cert_pem(cert), private_key_pem(key)
