"""What the API server stand-in does for a joining node, as the real API server and controller-manager
do: bootstrap-token authentication with expiry, anonymous access to cluster-info only, the bootstrap
signer's ``jws-kubeconfig-<id>`` keys, and a kubelet client CSR approved and signed with the cluster CA.

The PKI comes from the product CLI; requests go over TLS verified against that CA, with raw
``http.client`` (so the Authorization header is exactly what a joining node sends). Signatures and
certificate checks are computed here independently (a hand-written HMAC, ``openssl verify``).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootstrap.cli.main import main
from tests.conftest import NODE
from tests.standin.apiserver import ApiServerStandin
from tests.standin.harness import free_ports
from tests.tools import tool

TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
TOKEN = f"{TOKEN_ID}.{TOKEN_SECRET}"
GROUP = "system:bootstrappers:kubeadm:default-node-token"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
SIGNER_DELAY = 0.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A rootfs with the product's PKI, kubeconfigs and manifests for 127.0.0.1:<free port>."""
    root = tmp_path_factory.mktemp("bootstrap-auth") / "rootfs"
    root.mkdir()
    port = free_ports(1)[0]
    args = ["--rootfs", str(root), "--node-name", NODE, "--advertise-address", "127.0.0.1"]
    args += ["--apiserver-bind-port", str(port)]
    for phase in ("certs", "kubeconfig", "manifests"):
        with pytest.raises(SystemExit) as exited:
            main(["phase", phase, *args])
        assert exited.value.code in (0, None)
    return root, port


@pytest.fixture
def server(cluster: tuple[Path, int]) -> Iterator[ApiServerStandin]:
    root, _ = cluster
    pod = _manifest(root, "kube-apiserver")
    standin = ApiServerStandin.from_manifest(pod, root)
    standin.start()
    yield standin
    standin.stop()


def _manifest(root: Path, name: str) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load((root / f"etc/kubernetes/manifests/{name}.yaml").read_text())
    return doc


class Client:
    """HTTP over TLS verified with the cluster CA; an optional bearer token or client certificate."""

    def __init__(self, server: ApiServerStandin, root: Path, token: str | None = None) -> None:
        self.server, self.token = server, token
        self.context = ssl.create_default_context(cafile=str(root / "etc/kubernetes/pki/ca.crt"))
        self.context.check_hostname = (
            False  # the serving cert is for the node's address; IP checked elsewhere
        )

    def with_cert(self, cert: Path, key: Path) -> Client:
        self.context.load_cert_chain(str(cert), str(key))
        return self

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(
            self.server.host, self.server.port, context=self.context, timeout=10
        )
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, json.loads(raw) if raw else None


def _admin(server: ApiServerStandin, root: Path) -> Client:
    pki = root / "etc/kubernetes/pki"
    # apiserver-kubelet-client is privileged in the stand-in (system:masters-like); enough to set up.
    return Client(server, root).with_cert(
        pki / "apiserver-kubelet-client.crt", pki / "apiserver-kubelet-client.key"
    )


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def token_secret(
    token_id: str = TOKEN_ID,
    secret: str = TOKEN_SECRET,
    *,
    expiration: datetime.datetime | None = None,
    usages: tuple[str, ...] = ("authentication", "signing"),
    groups: str = GROUP,
) -> dict[str, Any]:
    data = {"token-id": token_id, "token-secret": secret, "auth-extra-groups": groups}
    data |= {f"usage-bootstrap-{u}": "true" for u in usages}
    if expiration is not None:
        data["expiration"] = expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "data": {k: _b64(v) for k, v in data.items()},
    }


def kubeadm_rbac() -> list[tuple[str, dict[str, Any]]]:
    """The bindings kubeadm (and bootstrap init) create so that joining nodes may bootstrap."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"

    def crb(name: str, role: str, group: str) -> tuple[str, dict[str, Any]]:
        return f"{rbac}/clusterrolebindings", {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io"}],
        }

    return [
        crb("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", GROUP),
        crb(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            GROUP,
        ),
    ]


def jws(content: str, kid: str, secret: str) -> str:
    def enc(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).decode().replace("=", "")

    protected = enc(b'{"alg":"HS256","kid":"' + kid.encode() + b'"}')
    mac = hmac.new(secret.encode(), (protected + "." + enc(content.encode())).encode(), hashlib.sha256)
    return protected + ".." + enc(mac.digest())


def cluster_info(content: str = "apiVersion: v1\nkind: Config\n") -> dict[str, Any]:
    return {"metadata": {"name": "cluster-info", "namespace": "kube-public"}, "data": {"kubeconfig": content}}


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


def csr_body(
    key: ec.EllipticCurvePrivateKey, cn: str, org: str = "system:nodes", name: str = "node-csr-"
) -> Any:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": name},
        "spec": {
            "request": base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
            "username": "someone-else",  # the server must overwrite what the client claims
            "groups": ["system:masters"],
        },
    }


# -- authentication ----------------------------------------------------------------------------------
def test_a_bootstrap_token_authenticates_as_its_bootstrap_user_with_its_groups(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    assert admin.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret())[0] == 201
    joiner = Client(server, root, TOKEN)
    # Without kubeadm's bindings the token authenticates but may do nothing: 403 naming the user.
    code, status = joiner.call(
        "POST", CSR_PATH, csr_body(ec.generate_private_key(ec.SECP256R1()), "system:node:w1")
    )
    assert code == 403 and 'User "system:bootstrap:abcdef"' in status["message"]
    for path, body in kubeadm_rbac():
        assert admin.call("POST", path, body)[0] == 201
    code, created = joiner.call(
        "POST", CSR_PATH, csr_body(ec.generate_private_key(ec.SECP256R1()), "system:node:w1")
    )
    assert code == 201, created
    assert created["spec"]["username"] == "system:bootstrap:abcdef"
    assert set(created["spec"]["groups"]) == {"system:bootstrappers", GROUP, "system:authenticated"}
    # A right the bindings do not give stays forbidden.
    assert joiner.call("GET", "/api/v1/namespaces/kube-system/secrets")[0] == 403


@pytest.mark.parametrize(
    ("secret", "presented"),
    [
        (token_secret(), f"{TOKEN_ID}.ffffffffffffffff"),  # wrong secret
        (token_secret(usages=("signing",)), TOKEN),  # not for authentication
        (token_secret(expiration=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)), TOKEN),
        (None, TOKEN),  # no such token
        (token_secret(groups=f"{GROUP},system:masters"), TOKEN),  # a group a token may not grant
    ],
    ids=["wrong-secret", "no-authentication-usage", "expired", "unknown", "group-outside-bootstrappers"],
)
def test_a_token_that_is_wrong_expired_unknown_or_not_for_authentication_is_401(
    server: ApiServerStandin, cluster: tuple[Path, int], secret: dict[str, Any] | None, presented: str
) -> None:
    root, _ = cluster
    if secret is not None:
        assert _admin(server, root).call("POST", "/api/v1/namespaces/kube-system/secrets", secret)[0] == 201
    code, status = Client(server, root, presented).call("GET", "/api/v1/nodes/cp1")
    assert (code, status["reason"]) == (401, "Unauthorized")
    # Even the one resource anonymous users may read: a bad credential is not anonymous.
    assert Client(server, root, presented).call("GET", CLUSTER_INFO)[0] == 401


def test_a_token_expires_on_the_standins_clock_and_the_cleaner_deletes_it(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    in_an_hour = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    assert (
        admin.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret(expiration=in_an_hour))[0]
        == 201
    )
    for path, body in kubeadm_rbac():
        admin.call("POST", path, body)
    joiner = Client(server, root, TOKEN)
    assert joiner.call("GET", f"{CSR_PATH}")[0] == 200
    server.advance_clock(datetime.timedelta(hours=1, seconds=1))
    assert joiner.call("GET", f"{CSR_PATH}")[0] == 401
    gone = wait_until(
        lambda: admin.call("GET", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")[0] == 404
    )
    assert gone, "the token cleaner did not delete the expired token"


# -- anonymous ---------------------------------------------------------------------------------------
def test_anonymous_may_read_cluster_info_and_nothing_else(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    _admin(server, root).call("POST", "/api/v1/namespaces/kube-public/configmaps", cluster_info())
    anonymous = Client(server, root)
    assert anonymous.call("GET", CLUSTER_INFO)[0] == 200
    for method, path in [
        ("GET", "/api/v1/namespaces/kube-public/configmaps"),
        ("GET", "/api/v1/namespaces/kube-system/secrets"),
        ("GET", "/api/v1/namespaces/kube-public/configmaps/other"),
        ("PUT", CLUSTER_INFO),
        ("POST", CSR_PATH),
        ("GET", "/api"),
        ("GET", "/api/v1"),
        ("GET", "/apis"),
        ("GET", "/apis/certificates.k8s.io/v1"),
    ]:
        code, status = anonymous.call(method, path, {} if method != "GET" else None)
        assert code == 403, (method, path)
        assert 'User "system:anonymous"' in status["message"], status
    assert anonymous.call("GET", "/version")[0] == 200


# -- bootstrap signer --------------------------------------------------------------------------------
def _signature(admin: Client, token_id: str = TOKEN_ID) -> str | None:
    data = admin.call("GET", CLUSTER_INFO)[1]["data"]
    value: str | None = data.get(f"jws-kubeconfig-{token_id}")
    return value


def test_the_signer_adds_the_tokens_signature_a_little_late_and_keeps_it_current(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    admin.call("POST", "/api/v1/namespaces/kube-public/configmaps", cluster_info("first\n"))
    started = time.monotonic()
    admin.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret())
    assert _signature(admin) is None  # not at once: a join has to wait for it
    assert wait_until(lambda: _signature(admin)) == jws("first\n", TOKEN_ID, TOKEN_SECRET)
    assert time.monotonic() - started >= SIGNER_DELAY
    # A new kubeconfig is signed again (a client's update that drops our keys gets them back).
    admin.call("PUT", CLUSTER_INFO, cluster_info("second\n"))
    assert wait_until(lambda: _signature(admin) == jws("second\n", TOKEN_ID, TOKEN_SECRET))


def test_the_signer_signs_only_with_valid_signing_tokens_and_removes_stale_keys(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    info = cluster_info()
    info["data"]["jws-kubeconfig-zzzzzz"] = "stale"
    info["data"]["other"] = "kept"
    admin.call("POST", "/api/v1/namespaces/kube-public/configmaps", info)
    admin.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret())
    admin.call(
        "POST", "/api/v1/namespaces/kube-system/secrets", token_secret("auth00", usages=("authentication",))
    )
    in_an_hour = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    admin.call(
        "POST", "/api/v1/namespaces/kube-system/secrets", token_secret("soon00", expiration=in_an_hour)
    )
    assert wait_until(lambda: _signature(admin) and _signature(admin, "soon00"))
    data = admin.call("GET", CLUSTER_INFO)[1]["data"]
    assert sorted(data) == ["jws-kubeconfig-abcdef", "jws-kubeconfig-soon00", "kubeconfig", "other"]
    server.advance_clock(datetime.timedelta(hours=2))  # soon00 expires
    assert wait_until(lambda: _signature(admin, "soon00") is None)
    admin.call("DELETE", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")
    assert wait_until(lambda: _signature(admin) is None)
    assert admin.call("GET", CLUSTER_INFO)[1]["data"] == {
        "kubeconfig": info["data"]["kubeconfig"],
        "other": "kept",
    }


# -- CSR ---------------------------------------------------------------------------------------------
def _bootstrapped(server: ApiServerStandin, root: Path) -> Client:
    admin = _admin(server, root)
    admin.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret())
    for path, body in kubeadm_rbac():
        admin.call("POST", path, body)
    return Client(server, root, TOKEN)


def test_a_kubelet_client_csr_from_a_bootstrapper_is_approved_and_signed_by_the_cluster_ca(
    server: ApiServerStandin, cluster: tuple[Path, int], tmp_path: Path
) -> None:
    root, _ = cluster
    joiner = _bootstrapped(server, root)
    key = ec.generate_private_key(ec.SECP256R1())
    code, created = joiner.call("POST", CSR_PATH, csr_body(key, "system:node:worker1"))
    assert code == 201
    name = created["metadata"]["name"]

    def issued() -> Any:
        status = joiner.call("GET", f"{CSR_PATH}/{name}")[1].get("status") or {}
        return status if status.get("certificate") else None

    status = wait_until(issued)
    assert status, "the CSR was not signed"
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [
        ("Approved", "True", "AutoApproved")
    ]
    pem = base64.b64decode(status["certificate"])
    cert_file, key_file = tmp_path / "kubelet-client.crt", tmp_path / "kubelet-client.key"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    ca = root / "etc/kubernetes/pki/ca.crt"
    verified = subprocess.run(
        [tool("openssl"), "verify", "-CAfile", str(ca), "-purpose", "sslclient", str(cert_file)],
        capture_output=True,
        text=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.rfc4514_string() == "CN=system:node:worker1,O=system:nodes"
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=364) < lifetime <= datetime.timedelta(days=366)
    # The certificate works: the API server now knows this client as the node.
    server.request_log.clear()
    as_node = Client(server, root).with_cert(cert_file, key_file)
    assert as_node.call("GET", "/api/v1/nodes")[0] == 200
    assert ("GET", "/api/v1/nodes", "system:node:worker1") in server.request_log


@pytest.mark.parametrize(
    ("cn", "org", "with_approval_binding"),
    [
        ("system:node:worker1", "system:nodes", False),  # the requester may not ask for node client certs
        ("system:node:worker1", "system:masters", True),  # not a kubelet client request
        ("admin", "system:nodes", True),
    ],
    ids=["no-nodeclient-binding", "wrong-organization", "wrong-common-name"],
)
def test_a_csr_the_approver_must_not_approve_stays_pending(
    server: ApiServerStandin, cluster: tuple[Path, int], cn: str, org: str, with_approval_binding: bool
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    admin.call("POST", "/api/v1/namespaces/kube-system/secrets", token_secret())
    for path, body in kubeadm_rbac()[: None if with_approval_binding else 1]:
        admin.call("POST", path, body)
    joiner = Client(server, root, TOKEN)
    code, created = joiner.call("POST", CSR_PATH, csr_body(ec.generate_private_key(ec.SECP256R1()), cn, org))
    assert code == 201, created
    time.sleep(0.5)  # many controller passes
    status = joiner.call("GET", f"{CSR_PATH}/{created['metadata']['name']}")[1].get("status") or {}
    assert not status.get("conditions") and not status.get("certificate")


def test_an_admin_approval_gets_a_pending_csr_signed(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    joiner = _bootstrapped(server, root)
    # CN of another signer's kind: the approver leaves it, an administrator approves it by hand.
    body = csr_body(ec.generate_private_key(ec.SECP256R1()), "jane", "devs")
    body["spec"]["signerName"] = "kubernetes.io/kube-apiserver-client"
    code, created = joiner.call("POST", CSR_PATH, body)
    assert code == 201
    name = created["metadata"]["name"]
    created["status"] = {
        "conditions": [{"type": "Approved", "status": "True", "reason": "ByHand", "message": ""}]
    }
    code, _ = admin.call("PUT", f"{CSR_PATH}/{name}/approval", created)
    assert code == 200
    assert wait_until(
        lambda: (admin.call("GET", f"{CSR_PATH}/{name}")[1].get("status") or {}).get("certificate")
    )


def test_a_csr_that_is_not_a_certificate_request_is_invalid(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    joiner = _bootstrapped(server, root)
    body = csr_body(ec.generate_private_key(ec.SECP256R1()), "system:node:w1")
    body["spec"]["request"] = base64.b64encode(b"not a csr").decode()
    code, status = joiner.call("POST", CSR_PATH, body)
    assert (code, status["reason"]) == (422, "Invalid")
    assert "spec.request" in status["message"]


def test_the_official_client_with_a_bootstrap_token_can_create_a_csr_and_watch_it_get_signed(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    """What a kubelet's TLS bootstrap does: create the CSR with the token, then watch it by name."""
    from kubernetes import client, watch

    root, _ = cluster
    _bootstrapped(server, root)
    configuration = client.Configuration()
    configuration.host = server.url
    configuration.ssl_ca_cert = str(root / "etc/kubernetes/pki/ca.crt")
    configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
    configuration.retries = False
    with client.ApiClient(configuration) as api:
        certificates = client.CertificatesV1Api(api)
        body = csr_body(ec.generate_private_key(ec.SECP256R1()), "system:node:worker2")
        created = certificates.create_certificate_signing_request(body)
        name = created.metadata.name
        assert created.spec.username == "system:bootstrap:abcdef"
        signed = None
        for event in watch.Watch().stream(
            certificates.list_certificate_signing_request,
            field_selector=f"metadata.name={name}",
            timeout_seconds=10,
        ):
            if event["object"].status and event["object"].status.certificate:
                signed = event["object"]
                break
    assert signed is not None, "no signed CSR seen on the watch"
    cert = x509.load_pem_x509_certificate(base64.b64decode(signed.status.certificate))
    assert cert.subject.rfc4514_string() == "CN=system:node:worker2,O=system:nodes"


def test_string_data_is_folded_into_data_as_the_real_server_does(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    root, _ = cluster
    admin = _admin(server, root)
    body = token_secret()
    body["stringData"] = {"token-secret": "ffffffffffffffff", "description": "d"}
    code, created = admin.call("POST", "/api/v1/namespaces/kube-system/secrets", body)
    assert code == 201 and "stringData" not in created
    assert base64.b64decode(created["data"]["token-secret"]) == b"ffffffffffffffff"
    assert Client(server, root, f"{TOKEN_ID}.ffffffffffffffff").call("GET", CSR_PATH)[0] in (200, 403)
    assert Client(server, root, TOKEN).call("GET", CSR_PATH)[0] == 401
