"""certs renew and check-expiration: what renewal keeps and changes, windows, refusals, kubeconfigs."""

from __future__ import annotations

import base64
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pki_helpers import NOW, generate_all, make_settings, write_kubeconfig

from bootstrap.errors import PkiError
from bootstrap.pki import (
    KeySource,
    check_expiration,
    ensure_cert,
    load_ca,
    render_text,
    renew,
    to_dict,
    verify_client_pair,
)
from bootstrap.pki.expiration import residual_time

ECDSA = make_settings(encryption_algorithm="ECDSA-P256", apiserver_cert_sans=("api.example.com", "10.0.0.9"))
LATER = NOW + timedelta(days=30)
YEAR = timedelta(days=365)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    generate_all(root / "pki", ECDSA)
    write_kubeconfig(
        root / "admin.conf", root / "pki", "kubernetes-admin", ("kubeadm:cluster-admins",), ECDSA
    )
    write_kubeconfig(root / "scheduler.conf", root / "pki", "system:kube-scheduler", (), ECDSA)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path, dirs_exist_ok=True)
    return tmp_path


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def ext(c: x509.Certificate, kind: type[x509.ExtensionType]) -> Any:
    return c.extensions.get_extension_for_class(kind).value


def do_renew(
    root: Path, name: str, window: timedelta | None = None, algorithm: str = "ECDSA-P256"
) -> list[Any]:
    with KeySource(algorithm) as keys:
        return renew(name, root / "pki", root, LATER, YEAR, keys, window)


def test_renew_keeps_subject_sans_eku_and_issues_new_key_serial_and_later_expiry(root: Path) -> None:
    pki = root / "pki"
    old, old_key = cert(pki / "apiserver.crt"), (pki / "apiserver.key").read_bytes()
    (outcome,) = do_renew(root, "apiserver")
    new = cert(pki / "apiserver.crt")
    assert outcome.changed and outcome.message == '"apiserver" certificate renewed'
    assert outcome.files == [pki / "apiserver.key", pki / "apiserver.crt"]
    assert new.subject == old.subject
    assert ext(new, x509.SubjectAlternativeName) == ext(old, x509.SubjectAlternativeName)
    assert "api.example.com" in ext(new, x509.SubjectAlternativeName).get_values_for_type(x509.DNSName)
    assert ext(new, x509.ExtendedKeyUsage) == ext(old, x509.ExtendedKeyUsage)
    assert new.serial_number != old.serial_number
    assert (pki / "apiserver.key").read_bytes() != old_key
    assert new.public_key() != old.public_key()
    assert new.not_valid_before_utc == LATER - timedelta(minutes=5)
    assert new.not_valid_after_utc == LATER + YEAR > old.not_valid_after_utc
    new.verify_directly_issued_by(load_ca(pki).cert)
    assert (pki / "apiserver.key").stat().st_mode & 0o7777 == 0o600
    # the renewed cert passes the re-run checks
    with KeySource("ECDSA-P256") as keys:
        assert ensure_cert("apiserver", ECDSA, pki, keys).changed is False


def test_renew_keeps_the_key_type_even_when_the_key_source_makes_another(root: Path) -> None:
    do_renew(root, "etcd-peer", algorithm="RSA-2048")
    key = cert(root / "pki" / "etcd" / "peer.crt").public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert (root / "pki" / "etcd" / "peer.key").read_text().startswith("-----BEGIN EC PRIVATE KEY-----")


def test_renew_if_expiring_within_skips_fresh_certs_and_renews_one_near_expiry(root: Path) -> None:
    pki = root / "pki"
    for suffix in ("crt", "key"):
        (pki / f"front-proxy-client.{suffix}").unlink()
    short = make_settings(encryption_algorithm="ECDSA-P256", cert_validity=timedelta(days=40))
    with KeySource("ECDSA-P256") as keys:
        ensure_cert("front-proxy-client", short, pki, keys)  # expires 10 days after LATER
    fresh_before = (pki / "apiserver.crt").read_bytes()
    outcomes = do_renew(root, "all", window=timedelta(days=20))
    changed = [o for o in outcomes if o.changed]
    assert [o.message for o in changed] == ['"front-proxy-client" certificate renewed']
    assert cert(pki / "front-proxy-client.crt").not_valid_after_utc == LATER + YEAR
    assert (pki / "apiserver.crt").read_bytes() == fresh_before
    not_due = [o.message for o in outcomes if "not due" in o.message]
    assert len(not_due) == 8  # 6 other leaves + admin.conf + scheduler.conf
    assert '"apiserver" certificate is not due for renewal' in not_due[1]
    skipped = [o.message for o in outcomes if "missing" in o.message]
    assert len(skipped) == 2 and "controller-manager.conf" in skipped[0] and "super-admin.conf" in skipped[1]


@pytest.mark.parametrize("name", ["ca", "front-proxy-ca", "etcd-ca", "sa"])
def test_renewing_a_ca_or_the_sa_key_is_refused(root: Path, name: str) -> None:
    before = (root / "pki" / "ca.crt").read_bytes()
    with pytest.raises(
        PkiError, match=rf'"{name}" cannot be renewed: CAs and the service-account key are never'
    ):
        do_renew(root, name)
    assert (root / "pki" / "ca.crt").read_bytes() == before


def test_renewing_kubelet_conf_is_refused_because_the_kubelet_rotates_it(root: Path) -> None:
    with pytest.raises(PkiError, match=r"the kubelet rotates its own client certificate"):
        do_renew(root, "kubelet.conf")


def test_renewing_an_unknown_name_lists_the_valid_names(root: Path) -> None:
    with pytest.raises(PkiError) as err:
        do_renew(root, "apiserver-x")
    assert err.value.message == (
        "unknown certificate 'apiserver-x'; valid: admin.conf, apiserver, apiserver-etcd-client, "
        "apiserver-kubelet-client, controller-manager.conf, etcd-healthcheck-client, etcd-peer, etcd-server, "
        "front-proxy-client, scheduler.conf, super-admin.conf, all"
    )


def test_renewal_under_an_external_ca_is_refused(root: Path) -> None:
    (root / "pki" / "ca.key").unlink()
    before = (root / "pki" / "apiserver.crt").read_bytes()
    with pytest.raises(
        PkiError, match=r'cannot renew "apiserver": the "ca" CA key .* is absent \(externally managed'
    ):
        do_renew(root, "apiserver")
    assert (root / "pki" / "apiserver.crt").read_bytes() == before


def test_renewing_a_missing_cert_by_name_is_an_error(root: Path) -> None:
    with pytest.raises(PkiError, match=r"super-admin\.conf: missing, nothing to renew"):
        do_renew(root, "super-admin.conf")


def _user(path: Path) -> dict[str, str]:
    user: dict[str, str] = yaml.safe_load(path.read_text())["users"][0]["user"]
    return user


def test_renew_kubeconfig_reissues_the_embedded_client_cert_and_keeps_the_rest(root: Path) -> None:
    path = root / "admin.conf"
    doc_before = yaml.safe_load(path.read_text())
    old = x509.load_pem_x509_certificate(base64.b64decode(_user(path)["client-certificate-data"]))
    (outcome,) = do_renew(root, "admin.conf")
    assert outcome.changed and outcome.files == [path]
    assert path.stat().st_mode & 0o7777 == 0o600
    user = _user(path)
    cert_pem, key_pem = (
        base64.b64decode(user["client-certificate-data"]),
        base64.b64decode(user["client-key-data"]),
    )
    new = x509.load_pem_x509_certificate(cert_pem)
    assert new.subject == old.subject and new.serial_number != old.serial_number
    assert new.not_valid_after_utc == LATER + YEAR
    ca = load_ca(root / "pki")
    assert (
        verify_client_pair(
            ca.cert,
            cert_pem,
            key_pem,
            common_name="kubernetes-admin",
            organizations=["kubeadm:cluster-admins"],
        )
        is None
    )
    doc_after = yaml.safe_load(path.read_text())
    assert doc_after["clusters"] == doc_before["clusters"]
    assert doc_after["current-context"] == doc_before["current-context"]


def test_check_expiration_lists_leaves_kubeconfigs_and_cas(root: Path) -> None:
    report = check_expiration(root / "pki", root, NOW + timedelta(minutes=1))
    rows = {r.name: r for r in report.certificates}
    assert list(rows) == [
        "admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client",
        "controller-manager.conf", "etcd-healthcheck-client", "etcd-peer", "etcd-server",
        "front-proxy-client", "scheduler.conf", "super-admin.conf",
    ]  # fmt: skip
    assert rows["controller-manager.conf"].missing and rows["super-admin.conf"].missing
    assert rows["admin.conf"].residual == "364d" and rows["admin.conf"].authority == "ca"
    assert (
        rows["etcd-peer"].authority == "etcd-ca" and rows["front-proxy-client"].authority == "front-proxy-ca"
    )
    assert rows["apiserver"].expires == NOW + YEAR
    assert not any(r.externally_managed for r in report.certificates)
    assert [(r.name, r.residual) for r in report.authorities] == [
        ("ca", "9y"),
        ("etcd-ca", "9y"),
        ("front-proxy-ca", "9y"),
    ]


def test_check_expiration_shows_invalid_for_expired_certs_and_external_cas(root: Path) -> None:
    (root / "pki" / "etcd" / "ca.key").unlink()
    report = check_expiration(root / "pki", root, NOW + YEAR + timedelta(days=1))
    text = render_text(report)
    lines = text.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == [
        "CERTIFICATE",
        "EXPIRES",
        "RESIDUAL TIME",
        "CERTIFICATE AUTHORITY",
        "EXTERNALLY MANAGED",
    ]
    apiserver = next(line for line in lines if line.startswith("apiserver "))
    assert apiserver.split()[-3:] == ["<invalid>", "ca", "no"]
    assert (NOW + YEAR).strftime("%b %d, %Y %H:%M UTC") in apiserver
    etcd_peer = next(line for line in lines if line.startswith("etcd-peer "))
    assert etcd_peer.split()[-3:] == ["<invalid>", "etcd-ca", "yes"]
    assert "!MISSING! super-admin.conf" in lines
    # columns are aligned: every header word of the first table starts at the same offset in each row
    col = lines[0].index("RESIDUAL TIME")
    assert apiserver[col : col + len("<invalid>")] == "<invalid>"
    ca_header = lines.index("") + 1
    assert lines[ca_header].split()[:2] == ["CERTIFICATE", "AUTHORITY"]
    assert lines[ca_header + 2].split()[-2:] == ["8y", "yes"]  # etcd-ca


def test_expiration_document_is_json_serialisable_and_has_no_key_material(root: Path) -> None:
    doc = to_dict(check_expiration(root / "pki", root, NOW + timedelta(minutes=1)))
    text = json.dumps(doc)
    assert "PRIVATE" not in text and "client-key-data" not in text
    first = doc["certificates"][0]
    assert first["name"] == "admin.conf" and first["residualTime"] == "364d" and first["missing"] is False
    assert first["expirationDate"] == (NOW + YEAR).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert doc["certificateAuthorities"][0]["name"] == "ca"


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(seconds=42), "42s"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=23), "23h"),
        (timedelta(days=364, hours=23), "364d"),
        (timedelta(days=3650), "10y"),
        (timedelta(days=3649), "9y"),
    ],
)
def test_residual_time_is_kubeadm_short_duration(remaining: timedelta, expected: str) -> None:
    assert residual_time(remaining) == expected
