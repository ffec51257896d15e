"""Join discovery against a small HTTPS server of the test's own: what is trusted, what is refused,
what is retried, and what the user is told.

The JWS and the CA hash are computed here independently of the product (the Go test vectors, a
hand-written HMAC, the openssl pipeline from the kubeadm docs).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bootstrap.cluster.discovery import (
    DiscoveryError,
    TokenDiscovery,
    ca_cert_hashes,
    detached_jws,
    discover_file,
    discover_token,
)
from bootstrap.errors import EXIT_INVALID_CONFIG, EXIT_PHASE_FAILED, ConfigError

TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
TOKEN = f"{TOKEN_ID}.{TOKEN_SECRET}"


# -- independent crypto -------------------------------------------------------------------------------
def jws_by_hand(content: str, kid: str, secret: str) -> str:
    """RFC 7515 compact serialisation, payload detached (App. F), written out step by step."""

    def enc(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().replace("=", "")

    protected = enc(b'{"alg":"HS256","kid":"' + kid.encode() + b'"}')
    mac = hmac.HMAC(secret.encode(), digestmod="sha256")
    mac.update(protected.encode() + b"." + enc(content.encode()).encode())
    return protected + ".." + enc(mac.digest())


def openssl_pin(cert_pem: bytes) -> str:
    """The kubeadm docs' pipeline: the certificate's public key, DER, sha256."""
    pub = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout"], input=cert_pem, capture_output=True, check=True
    )
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub.stdout, capture_output=True, check=True
    )
    return "sha256:" + hashlib.sha256(der.stdout).hexdigest()


@dataclass
class Pki:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def make_pki(tmp: Path, sans: list[x509.GeneralName] | None = None) -> Pki:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(sans or [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


def cluster_info_kubeconfig(ca_pem: bytes, server: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "",
                    "cluster": {
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                        "server": server,
                    },
                }
            ],
            "contexts": None,
            "current-context": "",
            "users": None,
        }
    )


# -- the test's server ----------------------------------------------------------------------------------
Answer = tuple[int, dict[str, Any]]


@dataclass
class Seen:
    path: str
    authorization: str | None


@dataclass
class Server:
    """An HTTPS server on loopback; ``answer(n, path)`` gives the reply to the n-th request (from 0)."""

    pki: Pki
    tmp: Path
    answer: Callable[[int, str], Answer] = lambda n, path: (404, {})
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def start(self) -> None:
        (self.tmp / "srv.crt").write_bytes(self.pki.cert_pem)
        (self.tmp / "srv.key").write_bytes(self.pki.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tmp / "srv.crt", self.tmp / "srv.key")
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with lock:
                    n = len(outer.seen)
                    outer.seen.append(Seen(self.path, self.headers.get("Authorization")))
                code, body = outer.answer(n, self.path)
                raw = body["raw"] if "raw" in body else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


def config_map(data: dict[str, str]) -> dict[str, Any]:
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "cluster-info"}, "data": data}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def server(pki: Pki, tmp_path: Path) -> Iterator[Server]:
    srv = Server(pki, tmp_path)
    srv.start()
    yield srv
    srv.stop()


class FakeClock:
    """Discovery's clock: sleeping advances time at once, so a 5-minute timeout costs nothing."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


def signed_info(
    pki: Pki, server_url: str, token_id: str = TOKEN_ID, secret: str = TOKEN_SECRET
) -> dict[str, Any]:
    kubeconfig = cluster_info_kubeconfig(pki.ca_pem, server_url)
    return config_map(
        {"kubeconfig": kubeconfig, f"jws-kubeconfig-{token_id}": jws_by_hand(kubeconfig, token_id, secret)}
    )


def settings(server: Server, pins: tuple[str, ...], **kw: Any) -> TokenDiscovery:
    return TokenDiscovery(endpoint=server.endpoint, token=kw.pop("token", TOKEN), ca_cert_hashes=pins, **kw)


def run(s: TokenDiscovery, clock: FakeClock | None = None) -> Any:
    clock = clock or FakeClock()
    return discover_token(s, now=clock.now, sleep=clock.sleep)


# -- the crypto ---------------------------------------------------------------------------------------
GO_VECTORS = [
    (
        "Hello from the other side. I must have called a thousand times.",
        "joshua",
        "my voice is my passcode",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8",
    ),
    (
        "",
        "joshua",
        "my voice is my passcode",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk",
    ),
    (
        "Hello from the other side. I must have called a thousand times.",
        "joshua",
        "",
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8",
    ),
]


@pytest.mark.parametrize(("content", "kid", "secret", "expected"), GO_VECTORS)
def test_the_detached_jws_matches_the_bootstrap_signers_test_vectors(
    content: str, kid: str, secret: str, expected: str
) -> None:
    assert detached_jws(content, kid, secret) == expected
    assert (
        jws_by_hand(content, kid, secret) == expected
    )  # the test's own signer agrees, so it can sign fixtures


def test_the_ca_hash_is_the_one_the_openssl_pipeline_prints(pki: Pki) -> None:
    assert ca_cert_hashes(pki.ca_pem) == [openssl_pin(pki.ca_pem)]
    other = make_pki(Path("/nonexistent"))
    assert ca_cert_hashes(pki.ca_pem + other.ca_pem) == [openssl_pin(pki.ca_pem), openssl_pin(other.ca_pem)]


# -- token discovery -----------------------------------------------------------------------------------
def test_a_signed_cluster_info_with_a_pinned_ca_is_trusted_after_a_verified_second_fetch(
    server: Server, pki: Pki
) -> None:
    info = signed_info(pki, "https://10.0.0.10:6443")
    server.answer = lambda n, path: (200, info)
    found = run(settings(server, (openssl_pin(pki.ca_pem).upper().replace("SHA256", "sha256"),)))
    assert found.server == "https://10.0.0.10:6443"
    assert found.ca_pem == pki.ca_pem
    assert found.kubeconfig == info["data"]["kubeconfig"]
    assert [s.path for s in server.seen] == ["/api/v1/namespaces/kube-public/configmaps/cluster-info"] * 2
    # The token never goes to a server that has not been proven yet (nor after: discovery is anonymous).
    assert all(s.authorization is None for s in server.seen)


def test_a_second_pin_that_matches_is_enough(server: Server, pki: Pki) -> None:
    server.answer = lambda n, path: (200, signed_info(pki, "https://lb:6443"))
    found = run(settings(server, ("sha256:" + "0" * 64, openssl_pin(pki.ca_pem))))
    assert found.server == "https://lb:6443"


def test_discovery_waits_for_the_signer_to_add_the_signature(server: Server, pki: Pki) -> None:
    info = signed_info(pki, "https://10.0.0.10:6443")
    unsigned = config_map({"kubeconfig": info["data"]["kubeconfig"]})
    server.answer = lambda n, path: (200, unsigned if n < 3 else info)
    clock = FakeClock()
    messages: list[str] = []
    found = discover_token(
        settings(server, (openssl_pin(pki.ca_pem),)),
        now=clock.now,
        sleep=clock.sleep,
        progress=messages.append,
    )
    assert found.ca_pem == pki.ca_pem
    assert len(server.seen) == 5  # three unsigned, the signed one, the verified second fetch
    assert len(clock.slept) == 3
    assert any("no signature for token id 'abcdef' yet" in m for m in messages)


def test_an_unknown_or_expired_token_says_how_to_make_a_new_one(server: Server, pki: Pki) -> None:
    server.answer = lambda n, path: (200, signed_info(pki, "https://lb:6443", token_id="zzzzzz"))
    clock = FakeClock()
    with pytest.raises(DiscoveryError) as caught:
        run(settings(server, (openssl_pin(pki.ca_pem),), timeout=60), clock)
    error = caught.value
    assert error.cause == "token-unknown"
    assert error.exit_code == EXIT_PHASE_FAILED
    message = error.format_message()
    assert 'token id "abcdef" is invalid for this cluster or it has expired' in message
    assert "bootstrap token create --print-join-command" in message
    assert "\n" not in message and TOKEN_SECRET not in message
    assert 59 <= sum(clock.slept) <= 60  # waited the whole discovery timeout, no longer


def test_a_cluster_info_nobody_signs_points_at_the_signer(server: Server, pki: Pki) -> None:
    kubeconfig = cluster_info_kubeconfig(pki.ca_pem, "https://lb:6443")
    server.answer = lambda n, path: (200, config_map({"kubeconfig": kubeconfig}))
    messages: list[str] = []
    clock = FakeClock()
    with pytest.raises(DiscoveryError):
        discover_token(
            settings(server, (openssl_pin(pki.ca_pem),), timeout=3),
            now=clock.now,
            sleep=clock.sleep,
            progress=messages.append,
        )
    assert any("bootstrapsigner" in m for m in messages)


def test_a_signature_made_with_another_secret_is_refused_at_once(server: Server, pki: Pki) -> None:
    server.answer = lambda n, path: (200, signed_info(pki, "https://lb:6443", secret="ffffffffffffffff"))
    with pytest.raises(DiscoveryError) as caught:
        run(settings(server, (openssl_pin(pki.ca_pem),)))
    assert caught.value.cause == "signature-mismatch"
    assert len(server.seen) == 1
    assert TOKEN_SECRET not in caught.value.format_message()


def test_a_ca_that_is_not_pinned_is_refused_naming_the_hash_the_server_presented(
    server: Server, pki: Pki
) -> None:
    server.answer = lambda n, path: (200, signed_info(pki, "https://lb:6443"))
    wrong = "sha256:" + "ab" * 32
    with pytest.raises(DiscoveryError) as caught:
        run(settings(server, (wrong,)))
    message = caught.value.format_message()
    assert caught.value.cause == "ca-mismatch"
    assert openssl_pin(pki.ca_pem) in message
    assert "bootstrap token create --print-join-command" in message
    assert len(server.seen) == 1  # nothing fetched over the second, verified connection


def test_an_endpoint_whose_certificate_is_not_for_that_address_fails_the_verified_fetch(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path, [x509.DNSName("elsewhere.example")])
    srv = Server(pki, tmp_path)
    srv.start()
    try:
        srv.answer = lambda n, path: (200, signed_info(pki, "https://lb:6443"))
        with pytest.raises(DiscoveryError) as caught:
            run(settings(srv, (openssl_pin(pki.ca_pem),)))
    finally:
        srv.stop()
    assert caught.value.cause == "tls"
    message = caught.value.format_message()
    assert "127.0.0.1" in message and "apiServer.certSANs" in message


def test_cluster_info_that_changes_between_the_two_fetches_is_refused(server: Server, pki: Pki) -> None:
    first, second = signed_info(pki, "https://lb:6443"), signed_info(pki, "https://evil:6443")
    server.answer = lambda n, path: (200, first if n == 0 else second)
    with pytest.raises(DiscoveryError) as caught:
        run(settings(server, (openssl_pin(pki.ca_pem),)))
    assert caught.value.cause == "changed"


def test_unsafe_skip_trusts_the_signed_config_without_a_second_fetch(server: Server, pki: Pki) -> None:
    server.answer = lambda n, path: (200, signed_info(pki, "https://lb:6443"))
    found = run(settings(server, (), unsafe_skip_ca_verification=True))
    assert found.server == "https://lb:6443"
    assert len(server.seen) == 1


def test_a_busy_server_is_retried_and_a_missing_cluster_info_is_not(server: Server, pki: Pki) -> None:
    info = signed_info(pki, "https://lb:6443")
    server.answer = lambda n, path: (503, {"message": "etcd leader changed"}) if n < 2 else (200, info)
    assert run(settings(server, (openssl_pin(pki.ca_pem),))).server == "https://lb:6443"
    server.seen.clear()
    server.answer = lambda n, path: (404, {"message": 'configmaps "cluster-info" not found'})
    with pytest.raises(DiscoveryError) as caught:
        run(settings(server, (openssl_pin(pki.ca_pem),)))
    assert len(server.seen) == 1
    assert "has bootstrap init finished" in caught.value.format_message()


def test_anonymous_access_refused_is_explained(server: Server, pki: Pki) -> None:
    server.answer = lambda n, path: (403, {"message": 'User "system:anonymous" cannot get ...'})
    with pytest.raises(DiscoveryError) as caught:
        run(settings(server, (openssl_pin(pki.ca_pem),)))
    assert "kubeadm:bootstrap-signer-clusterinfo" in caught.value.format_message()


def test_an_unreachable_endpoint_is_retried_until_the_timeout_and_named(pki: Pki, tmp_path: Path) -> None:
    srv = Server(pki, tmp_path)
    srv.start()
    srv.stop()  # the port is now closed: connection refused
    clock = FakeClock()
    with pytest.raises(DiscoveryError) as caught:
        run(settings(srv, (openssl_pin(pki.ca_pem),), timeout=30), clock)
    message = caught.value.format_message()
    assert caught.value.cause == "unreachable"
    assert f"https://127.0.0.1:{srv.port}" in message and "connection refused" in message
    assert 29 <= sum(clock.slept) <= 30


def test_bad_settings_are_refused_naming_every_field_and_never_the_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        run(TokenDiscovery(endpoint="no-port", token="ABCDEF.0123456789abcdeX", ca_cert_hashes=("md5:00",)))
    error = caught.value
    assert error.exit_code == EXIT_INVALID_CONFIG
    fields = " ".join(error.problems)
    assert "discovery.bootstrapToken.token" in fields
    assert "caCertHashes[0]" in fields
    assert "apiServerEndpoint" in fields
    assert "0123456789abcdeX" not in error.format_message()
    with pytest.raises(ConfigError, match="--discovery-token-unsafe-skip-ca-verification"):
        run(TokenDiscovery(endpoint="127.0.0.1:6443", token=TOKEN))


# -- file discovery -----------------------------------------------------------------------------------
def file_kubeconfig(
    server: Server, ca_pem: bytes | None, user: dict[str, Any] | None = None
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": f"https://{server.endpoint}"}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": cluster}],
        "contexts": [{"name": "join", "context": {"cluster": "kubernetes", "user": "joiner"}}],
        "current-context": "join",
        "users": [{"name": "joiner", "user": user or {}}],
    }


def test_a_discovery_file_is_trusted_and_its_server_checked(server: Server, pki: Pki, tmp_path: Path) -> None:
    server.answer = lambda n, path: (200, signed_info(pki, f"https://{server.endpoint}"))
    path = tmp_path / "discovery.conf"
    path.write_text(yaml.safe_dump(file_kubeconfig(server, pki.ca_pem)))
    found = discover_file(str(path))
    assert found.ca_pem == pki.ca_pem and found.server == f"https://{server.endpoint}"
    assert not found.credentials and not found.warnings
    assert len(server.seen) == 1


def test_a_discovery_file_with_credentials_that_may_not_read_cluster_info_is_still_trusted(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    server.answer = lambda n, path: (403, {"message": "forbidden"})
    path = tmp_path / "discovery.conf"
    path.write_text(yaml.safe_dump(file_kubeconfig(server, pki.ca_pem, {"token": TOKEN})))
    found = discover_file(str(path))
    assert found.credentials
    assert server.seen[0].authorization == f"Bearer {TOKEN}"  # over TLS verified with the file's CA


def test_a_downloaded_discovery_file_without_a_ca_takes_it_from_cluster_info(
    server: Server, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "system-cas.pem"  # stands in for the host's CA bundle, which trusts our server
    bundle.write_bytes(pki.ca_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    without_ca = yaml.safe_dump(file_kubeconfig(server, None)).encode()
    server.answer = lambda n, path: (
        (200, {"raw": without_ca}) if path == "/join.conf" else (200, signed_info(pki, "https://lb:6443"))
    )
    found = discover_file(f"https://{server.endpoint}/join.conf")
    assert found.ca_pem == pki.ca_pem
    assert base64.b64encode(pki.ca_pem).decode() in found.kubeconfig
    assert found.warnings and "cluster-info names https://lb:6443" in found.warnings[0]


def test_a_missing_discovery_file_or_a_plain_http_url_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--discovery-file: .*no such file"):
        discover_file(str(tmp_path / "absent.conf"))
    with pytest.raises(ConfigError, match="only a file path or an https:// URL"):
        discover_file("http://127.0.0.1:1/join.conf")


def test_a_server_that_never_answers_cannot_hold_discovery_past_its_timeout(pki: Pki) -> None:
    import socket
    import time

    with socket.socket() as silent:  # accepts connections (backlog) but never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(DiscoveryError) as caught:
            discover_token(
                TokenDiscovery(f"127.0.0.1:{port}", TOKEN, (openssl_pin(pki.ca_pem),), timeout=1.5)
            )
        elapsed = time.monotonic() - started
    assert caught.value.cause == "unreachable" and "timed out" in str(caught.value)
    assert elapsed < 4  # one request alone may take 10 s; the deadline bounds it


def test_a_discovery_file_whose_credentials_are_refused_says_so_at_once(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    server.answer = lambda n, path: (401, {"message": "Unauthorized"})
    path = tmp_path / "discovery.conf"
    path.write_text(yaml.safe_dump(file_kubeconfig(server, pki.ca_pem, {"token": TOKEN})))
    with pytest.raises(DiscoveryError) as caught:
        discover_file(str(path))
    assert caught.value.cause == "unauthorized"
    assert f"refuses the credentials in --discovery-file {path}" in str(caught.value)
    assert TOKEN_SECRET not in str(caught.value)
    assert len(server.seen) == 1
