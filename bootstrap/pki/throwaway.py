"""Throwaway certificate authorities and service-account keys, made in memory for one dry run.

A dry run of ``bootstrap join`` that cannot have the cluster's CA, or its shared files (Secret
``kube-system/kubeadm-certs``), still plans every step with files of the right kind: these stand in
for them. They are built with the same table and signing code as a real cluster's, so every file a
plan derives from them (leaf certificates, kubeconfigs) is what a real run would write, only under
another CA. Nothing here writes a file or keeps a key beyond the values it returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bootstrap.pki.cert_upload import EXTERNAL_ETCD_KEYS, data_key
from bootstrap.pki.issue import CertificateAuthority, cert_pem, make_name, new_ca_cert, new_signed_cert
from bootstrap.pki.keys import generate_key, private_key_pem, public_key_pem
from bootstrap.pki.settings import PkiSettings
from bootstrap.pki.specs import CLIENT_AUTH, get_spec

# The CAs a control plane shares, by certificate-table name.
_SHARED_CAS = ("ca", "front-proxy-ca", "etcd-ca")
_SA_KEY, _SA_PUB = "sa.key", "sa.pub"
_EXTERNAL_CA, _EXTERNAL_CERT, _EXTERNAL_KEY = EXTERNAL_ETCD_KEYS
# The identity an external etcd's client certificate carries when a plan has to invent one.
_EXTERNAL_CLIENT_CN = "kube-apiserver-etcd-client"


@dataclass(frozen=True)
class PemPair:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes


def throwaway_ca(name: str, settings: PkiSettings) -> PemPair:
    """A new self-signed CA as the certificate table describes ``name`` (``ca``, ``etcd-ca`` ...),
    with the configured key algorithm and validity."""
    spec = get_spec(name)
    key = generate_key(settings.encryption_algorithm)
    return PemPair(cert_pem(new_ca_cert(spec.cn(settings), key, settings)), private_key_pem(key))


def _external_etcd_client(settings: PkiSettings) -> dict[str, bytes]:
    ca_key = generate_key(settings.encryption_algorithm)
    ca_cert = new_ca_cert(get_spec("etcd-ca").cn(settings), ca_key, settings)
    key = generate_key(settings.encryption_algorithm)
    cert = new_signed_cert(
        CertificateAuthority("etcd-ca", ca_cert, ca_key),
        key,
        subject=make_name(_EXTERNAL_CLIENT_CN),
        usages=(CLIENT_AUTH,),
        not_before=settings.not_before,
        validity=settings.cert_validity,
        now=settings.now,
    )
    return {
        _EXTERNAL_CA: cert_pem(ca_cert),
        _EXTERNAL_CERT: cert_pem(cert),
        _EXTERNAL_KEY: private_key_pem(key),
    }


def throwaway_shared_files(
    settings: PkiSettings, wanted: Iterable[str], cluster_ca: PemPair | None = None
) -> dict[str, bytes]:
    """New content for each of the ``wanted`` Secret data keys (as
    :func:`bootstrap.pki.cert_upload.files_to_share` names them). ``cluster_ca``, when given, is
    the cluster CA to hand out instead of a new one, so that the files agree with it."""
    wanted = set(wanted)
    files: dict[str, bytes] = {}
    for name in _SHARED_CAS:
        spec = get_spec(name)
        cert_key, key_key = data_key(spec.cert_file), data_key(spec.key_file)
        if not {cert_key, key_key} & wanted:
            continue
        pair = cluster_ca if name == "ca" and cluster_ca is not None else throwaway_ca(name, settings)
        files.update({cert_key: pair.cert, key_key: pair.key})
    if {_SA_KEY, _SA_PUB} & wanted:
        sa = generate_key(settings.encryption_algorithm)
        files.update({_SA_KEY: private_key_pem(sa), _SA_PUB: public_key_pem(sa)})
    if set(EXTERNAL_ETCD_KEYS) & wanted:
        files.update(_external_etcd_client(settings))
    return {key: content for key, content in files.items() if key in wanted}
