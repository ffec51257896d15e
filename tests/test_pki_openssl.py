"""The generated PKI, checked with the real ``openssl`` CLI: chains, names, SANs, usages, dates, keys, modes.

The expectations are written out here from kubeadm's certificate table (reference §2), not derived from
``bootstrap.pki.specs``, so a wrong row in the table fails these tests.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pki_helpers import NODE, NOW, generate_all, make_settings
from tools import tool

from bootstrap.pki import PkiSettings

LEAF_KU = ["Digital Signature", "Key Encipherment"]
CA_KU = ["Digital Signature", "Key Encipherment", "Certificate Sign"]
SERVER = "TLS Web Server Authentication"
CLIENT = "TLS Web Client Authentication"


@dataclass(frozen=True)
class Expected:
    base: str
    cn: str
    orgs: tuple[str, ...]
    eku: tuple[str, ...]
    ca_file: str
    is_ca: bool = False


EXPECTED = {
    "ca": Expected("ca", "kubernetes", (), (), "ca.crt", is_ca=True),
    "apiserver": Expected("apiserver", "kube-apiserver", (), (SERVER,), "ca.crt"),
    "apiserver-kubelet-client": Expected(
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        ("kubeadm:cluster-admins",),
        (CLIENT,),
        "ca.crt",
    ),
    "front-proxy-ca": Expected("front-proxy-ca", "front-proxy-ca", (), (), "front-proxy-ca.crt", is_ca=True),
    "front-proxy-client": Expected(
        "front-proxy-client", "front-proxy-client", (), (CLIENT,), "front-proxy-ca.crt"
    ),
    "etcd-ca": Expected("etcd/ca", "etcd-ca", (), (), "etcd/ca.crt", is_ca=True),
    "etcd-server": Expected("etcd/server", NODE, (), (SERVER, CLIENT), "etcd/ca.crt"),
    "etcd-peer": Expected("etcd/peer", NODE, (), (SERVER, CLIENT), "etcd/ca.crt"),
    "etcd-healthcheck-client": Expected(
        "etcd/healthcheck-client", "kube-etcd-healthcheck-client", (), (CLIENT,), "etcd/ca.crt"
    ),
    "apiserver-etcd-client": Expected(
        "apiserver-etcd-client", "kube-apiserver-etcd-client", (), (CLIENT,), "etcd/ca.crt"
    ),
}


def expected_sans(name: str, settings: PkiSettings) -> list[str]:
    """SANs as kubeadm computes them for the cases below: DNS sorted, then IPs in insertion order."""
    adv = settings.advertise_address
    if name in ("ca", "front-proxy-ca", "etcd-ca"):
        return [f"DNS:{EXPECTED[name].cn}"]
    if name == "apiserver":
        service_ip = "10.96.0.1" if ":" not in settings.service_subnet.split(",")[0] else "fd00:10:96::1"
        dns = [
            NODE,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        ips = [service_ip, adv]
        if settings.control_plane_endpoint == "cp.example.com:6443":
            dns.append("cp.example.com")
        if settings.control_plane_endpoint == "[fd00::100]:6443":
            ips.append("fd00::100")
        return [f"DNS:{d}" for d in sorted(dns)] + [f"IP:{ip}" for ip in ips]
    if name in ("etcd-server", "etcd-peer"):
        return [f"DNS:{d}" for d in sorted([NODE, "localhost"])] + [
            f"IP:{ip}" for ip in [adv, "127.0.0.1", "::1"]
        ]
    return []


CASES = {
    "rsa2048-ipv4": make_settings(control_plane_endpoint="cp.example.com:6443"),
    "ecdsa-p256-ipv4": make_settings(encryption_algorithm="ECDSA-P256"),
    "ecdsa-p256-ipv6": make_settings(
        encryption_algorithm="ECDSA-P256",
        advertise_address="fd00::10",
        service_subnet="fd00:10:96::/112,10.96.0.0/12",
        control_plane_endpoint="[fd00::100]:6443",
    ),
}


@pytest.fixture(scope="module", params=list(CASES))
def pki(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PkiSettings]:
    settings = CASES[request.param]
    pki_dir = tmp_path_factory.mktemp(request.param) / "pki"
    generate_all(pki_dir, settings)
    return pki_dir, settings


def openssl(*args: str) -> str:
    return subprocess.run([tool("openssl"), *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Parsed:
    subject: list[tuple[str, str]]
    issuer: list[tuple[str, str]]
    ext: dict[str, tuple[bool, str]]  # name -> (critical, value)
    not_before: datetime
    not_after: datetime


def _name(text: str) -> list[tuple[str, str]]:
    return [(k.strip(), v.strip()) for k, v in (part.split(" = ", 1) for part in text.split(", "))]


def _date(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y GMT").replace(tzinfo=UTC)


EXTENSIONS = (
    "subjectAltName",
    "keyUsage",
    "extendedKeyUsage",
    "basicConstraints",
    "subjectKeyIdentifier",
    "authorityKeyIdentifier",
)


def inspect(cert: Path) -> Parsed:
    out = openssl(
        "x509", "-in", str(cert), "-noout", "-subject", "-issuer", "-dates",
        "-ext", ",".join(EXTENSIONS),
    )  # fmt: skip
    fields: dict[str, str] = {}
    ext: dict[str, tuple[bool, str]] = {}
    current: str | None = None
    for line in out.splitlines():
        if line.startswith("X509v3 "):
            header, _, flag = line.partition(":")
            current = header.removeprefix("X509v3 ").strip()
            ext[current] = ("critical" in flag, "")
        elif line.startswith(" ") and current:
            critical, value = ext[current]
            ext[current] = (critical, (value + " " + line.strip()).strip())
        elif "=" in line:
            key, _, value = line.partition("=")
            fields[key] = value
            current = None
    return Parsed(_name(fields["subject"]), _name(fields["issuer"]), ext, _date(fields["notBefore"]),
                  _date(fields["notAfter"]))  # fmt: skip


def normalize_san(entry: str) -> str:
    kind, _, value = entry.partition(":")
    if kind == "IP Address":
        return f"IP:{ipaddress.ip_address(value)}"
    return f"{kind}:{value}"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_openssl_verifies_each_cert_against_its_ca_for_its_purpose(
    pki: tuple[Path, PkiSettings], name: str
) -> None:
    pki_dir, _ = pki
    exp = EXPECTED[name]
    args = ["verify", "-CAfile", str(pki_dir / exp.ca_file)]
    if SERVER in exp.eku:
        args += ["-purpose", "sslserver"]
    elif CLIENT in exp.eku:
        args += ["-purpose", "sslclient"]
    assert openssl(*args, str(pki_dir / f"{exp.base}.crt")).strip().endswith(": OK")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cert_subject_issuer_sans_and_usages_match_kubeadm_table(
    pki: tuple[Path, PkiSettings], name: str
) -> None:
    pki_dir, settings = pki
    exp = EXPECTED[name]
    cert = inspect(pki_dir / f"{exp.base}.crt")
    assert cert.subject == [("O", o) for o in exp.orgs] + [("CN", exp.cn)]
    issuer_cn = {"ca.crt": "kubernetes", "front-proxy-ca.crt": "front-proxy-ca", "etcd/ca.crt": "etcd-ca"}[
        exp.ca_file
    ]
    assert cert.issuer == [("CN", issuer_cn)]

    san = cert.ext.get("Subject Alternative Name")
    sans = [normalize_san(s) for s in san[1].split(", ")] if san else []
    assert sans == expected_sans(name, settings)

    assert cert.ext["Key Usage"] == (True, ", ".join(CA_KU if exp.is_ca else LEAF_KU))
    assert cert.ext["Basic Constraints"] == (True, "CA:TRUE" if exp.is_ca else "CA:FALSE")
    if exp.eku:
        assert cert.ext["Extended Key Usage"] == (False, ", ".join(exp.eku))
    else:
        assert "Extended Key Usage" not in cert.ext
    if exp.is_ca:  # Go generates an SKI for CAs and no AKI on self-signed certs
        assert "Subject Key Identifier" in cert.ext
        assert "Authority Key Identifier" not in cert.ext
    else:
        ca_ski = inspect(pki_dir / exp.ca_file).ext["Subject Key Identifier"][1]
        assert cert.ext["Authority Key Identifier"][1].removeprefix("keyid:") == ca_ski


@pytest.mark.parametrize("name", list(EXPECTED))
def test_validity_starts_five_minutes_before_the_run_and_lasts_the_configured_period(
    pki: tuple[Path, PkiSettings], name: str
) -> None:
    pki_dir, settings = pki
    exp = EXPECTED[name]
    cert = inspect(pki_dir / f"{exp.base}.crt")
    validity = settings.ca_validity if exp.is_ca else settings.cert_validity
    assert abs(cert.not_before - (NOW - timedelta(minutes=5))) <= timedelta(seconds=2)
    assert abs(cert.not_after - (cert.not_before + timedelta(minutes=5) + validity)) <= timedelta(seconds=2)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_serial_is_random_positive_63_bit(pki: tuple[Path, PkiSettings], name: str) -> None:
    pki_dir, _ = pki
    out = openssl("x509", "-in", str(pki_dir / f"{EXPECTED[name].base}.crt"), "-noout", "-serial")
    serial = int(out.strip().removeprefix("serial="), 16)
    assert 1 <= serial < 2**63


@pytest.mark.parametrize("name", list(EXPECTED))
def test_key_matches_cert_and_uses_the_kubeadm_pem_block(pki: tuple[Path, PkiSettings], name: str) -> None:
    pki_dir, settings = pki
    base = pki_dir / EXPECTED[name].base
    key_pub = openssl("pkey", "-in", f"{base}.key", "-pubout")
    cert_pub = openssl("x509", "-in", f"{base}.crt", "-noout", "-pubkey")
    assert key_pub == cert_pub
    block = "RSA PRIVATE KEY" if settings.encryption_algorithm.startswith("RSA") else "EC PRIVATE KEY"
    assert Path(f"{base}.key").read_text().startswith(f"-----BEGIN {block}-----\n")
    text = openssl("pkey", "-in", f"{base}.key", "-noout", "-text")
    if settings.encryption_algorithm == "RSA-2048":
        assert "Private-Key: (2048 bit" in text
    else:
        assert "NIST CURVE: P-256" in text


def test_sa_public_key_is_pkix_pem_of_sa_key(pki: tuple[Path, PkiSettings]) -> None:
    pki_dir, _ = pki
    pub = (pki_dir / "sa.pub").read_text()
    assert pub.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert openssl("pkey", "-in", str(pki_dir / "sa.key"), "-pubout") == pub


def test_file_modes_keys_0600_certs_0644_sa_pub_0600_dirs_0755(pki: tuple[Path, PkiSettings]) -> None:
    pki_dir, _ = pki
    modes = {str(p.relative_to(pki_dir)): p.stat().st_mode & 0o7777 for p in pki_dir.rglob("*")}
    expected_files = {f"{e.base}.{ext}" for e in EXPECTED.values() for ext in ("crt", "key")} | {
        "sa.key",
        "sa.pub",
    }
    assert set(modes) == expected_files | {"etcd"}  # no temp files left behind
    for path, mode in modes.items():
        want = 0o755 if path == "etcd" else 0o644 if path.endswith(".crt") else 0o600
        assert mode == want, f"{path}: {oct(mode)}"
    assert pki_dir.stat().st_mode & 0o7777 == 0o755


def test_apiserver_cert_sans_accept_ip_and_dns_and_skip_invalid_with_warning(tmp_path: Path) -> None:
    settings = make_settings(
        encryption_algorithm="ECDSA-P256",
        apiserver_cert_sans=("10.0.0.9", "api.example.com", "*.example.org", "Not_Valid"),
    )
    outcomes = generate_all(tmp_path, settings, names=("ca", "apiserver"))
    cert = inspect(tmp_path / "apiserver.crt")
    sans = [normalize_san(s) for s in cert.ext["Subject Alternative Name"][1].split(", ")]
    assert sans == [
        "DNS:*.example.org", "DNS:api.example.com", f"DNS:{NODE}", "DNS:kubernetes", "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local",
        "IP:10.96.0.1", "IP:10.0.0.1", "IP:10.0.0.9",
    ]  # fmt: skip
    assert re.search(r"WARNING: skipping 'Not_Valid'", outcomes[1].message)
    assert (
        "apiserver serving cert is signed for DNS names [*.example.org api.example.com cp1"
        in outcomes[1].message
    )
