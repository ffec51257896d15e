"""upload-certs: kubeadm's kubeadm-certs format, checked with a decrypt written here from the format
(not our code), the owner token that makes it expire, the no-op re-run, where the certificate key
may appear, both join commands, and cluster-info keeping the bootstrap signer's keys on a re-run.

The end-to-end tests run the real CLI against the kubelet and API server stand-ins.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kubernetes.client import CoreV1Api, RbacAuthorizationV1Api

from bootstrap.cluster.join_command import JoinCommand
from bootstrap.pki import cert_upload
from tests.standin.harness import add_endpoint_and_certificate_key, admin_client, kubelet_once_configured
from tests.test_init_e2e import Node, make_node

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f000112233445566778899aabbccddeeff"
# kubeadm's data keys for a stacked-etcd cluster (copycerts: file names with "/" turned into "-").
KUBEADM_DATA_KEYS = {
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.key",
    "sa.pub",
    "etcd-ca.crt",
    "etcd-ca.key",
}
FILE_OF = {key: key.replace("etcd-ca.", "etcd/ca.") for key in KUBEADM_DATA_KEYS}


def independent_open(blob: bytes, key_hex: str) -> bytes:
    """The format as written down (crypto_check.py): 12-byte nonce, then ciphertext with its tag."""
    return AESGCM(bytes.fromhex(key_hex)).decrypt(blob[:12], blob[12:], None)


# -- the crypto, alone ---------------------------------------------------------------------------


def test_what_we_seal_opens_with_an_independent_decrypt() -> None:
    data = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    blob = cert_upload.encrypt(data, bytes.fromhex(KEY))
    assert len(blob) == 12 + len(data) + 16
    assert independent_open(blob, KEY) == data
    assert cert_upload.encrypt(data, bytes.fromhex(KEY))[:12] != blob[:12]  # a fresh nonce each time


def test_what_kubeadm_seals_opens_with_ours() -> None:
    data = os.urandom(300)
    nonce = os.urandom(12)
    blob = nonce + AESGCM(bytes.fromhex(KEY)).encrypt(nonce, data, None)  # Go: gcm.Seal(nonce, nonce, ...)
    assert cert_upload.decrypt(blob, bytes.fromhex(KEY)) == data


@pytest.mark.parametrize(
    ("blob", "key"),
    [
        (cert_upload.encrypt(b"secret", bytes.fromhex(KEY)), os.urandom(32)),  # another key
        (cert_upload.encrypt(b"secret", bytes.fromhex(KEY))[:-1] + b"\0", bytes.fromhex(KEY)),  # tampered
        (b"short", bytes.fromhex(KEY)),
    ],
    # Named: the values are random, and parallel workers must collect the same test ids.
    ids=["another-key", "tampered", "short"],
)
def test_a_wrong_key_or_damaged_value_is_refused_without_quoting_the_key(blob: bytes, key: bytes) -> None:
    with pytest.raises(cert_upload.CertificateKeyError) as caught:
        cert_upload.decrypt(blob, key)
    assert key.hex() not in str(caught.value)


@pytest.mark.parametrize("bad", ["xyz", "ab" * 31, "ab" * 33])
def test_a_malformed_key_is_refused(bad: str) -> None:
    with pytest.raises(cert_upload.CertificateKeyError):
        cert_upload.decode_key(bad)


def test_generated_keys_are_64_hex_characters_and_differ() -> None:
    first, second = cert_upload.generate_key(), cert_upload.generate_key()
    assert len(first) == 64 and len(cert_upload.decode_key(first)) == 32 and first != second


def test_the_data_keys_are_kubeadms(tmp_path: Path) -> None:
    files = cert_upload.files_to_share(tmp_path, None)
    assert set(files) == KUBEADM_DATA_KEYS
    assert files["etcd-ca.key"] == tmp_path / "etcd/ca.key"
    external = cert_upload.ExternalEtcdFiles("/x/ca.pem", "/x/client.pem", "")
    files = cert_upload.files_to_share(tmp_path, external)
    assert "etcd-ca.crt" not in files
    assert files["external-etcd-ca.crt"] == Path("/x/ca.pem") and "external-etcd.key" not in files


def test_holds_compares_the_opened_content() -> None:
    key = bytes.fromhex(KEY)
    content = {"ca.crt": b"cert", "sa.pub": b"pub", "empty": b""}
    sealed = cert_upload.seal(content, key)
    assert sealed["empty"] == b""
    assert cert_upload.holds(sealed, content, key)
    assert not cert_upload.holds(sealed, {**content, "ca.crt": b"other"}, key)
    assert not cert_upload.holds(sealed, {**content, "extra": b"x"}, key)
    assert not cert_upload.holds(sealed, content, os.urandom(32))


# -- the join commands ---------------------------------------------------------------------------

HASH = "sha256:" + "ab" * 32


def test_with_uploaded_certs_both_commands_carry_what_they_need() -> None:
    join = JoinCommand("lb.example:6443", "abcdef.0123456789abcdef", HASH, KEY)
    text, shown = join.text(withhold_token=False, withhold_key=False)
    token = "abcdef.0123456789abcdef"
    worker = f"bootstrap join lb.example:6443 --token {token} --discovery-token-ca-cert-hash {HASH}"
    assert f"  {worker} --control-plane --certificate-key {KEY}\n" in text
    assert f"  {worker}\n" in text and shown
    assert join.control_plane_redacted("abcdef.<redacted>") == (
        f"bootstrap join lb.example:6443 --token abcdef.<redacted> --discovery-token-ca-cert-hash {HASH} "
        "--control-plane --certificate-key <redacted>"
    )


def test_without_uploaded_certs_the_control_plane_command_says_to_upload_first() -> None:
    text, shown = JoinCommand("lb.example:6443", "abcdef.0123456789abcdef", HASH).text(False, False)
    assert "bootstrap init phase upload-certs --upload-certs" in text
    assert "--control-plane --certificate-key <certificate-key>" in text and not shown


def test_withheld_key_is_not_printed_and_not_counted_as_shown() -> None:
    text, shown = JoinCommand("lb:6443", "abcdef.0123456789abcdef", HASH, KEY).text(True, True)
    assert KEY not in text and "0123456789abcdef" not in text and not shown


def test_without_a_control_plane_endpoint_no_control_plane_command_is_offered() -> None:
    join = JoinCommand("10.0.0.1:6443", "abcdef.0123456789abcdef", HASH, KEY, control_plane_possible=False)
    text, shown = join.text(False, False)
    assert "--control-plane --certificate-key" not in text and "controlPlaneEndpoint" in text and not shown
    assert join.control_plane_redacted("abcdef.<redacted>") is None


# -- end to end ----------------------------------------------------------------------------------


def run(node: Node, *args: str, output_json: bool = True) -> tuple[int, dict[str, Any], str, str]:
    command = node.init_args(*args)
    if not output_json:
        command = [a for a in command if a not in ("-o", "json")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=180)
    doc = json.loads(proc.stdout) if output_json and proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stdout, proc.stderr


def phase(doc: dict[str, Any], path: str) -> dict[str, Any]:
    return next(p for p in doc["phases"] if p["path"] == path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any], str]]:
    """One node initialized with --upload-certs and InitConfiguration.certificateKey, -o json."""
    node = make_node(tmp_path_factory.mktemp("upload"))
    add_endpoint_and_certificate_key(node.config, KEY)
    with kubelet_once_configured(node.rootfs):
        code, doc, _, stderr = run(node, "--upload-certs", "--certificate-key-ttl", "90m")
        assert code == 0, stderr
        yield node, doc, stderr


def secret(node: Node, name: str) -> Any:
    return CoreV1Api(admin_client(node.rootfs)).read_namespaced_secret(name, "kube-system")


def test_kubeadm_certs_opens_to_the_files_on_disk(cluster: tuple[Node, dict[str, Any], str]) -> None:
    node, doc, _ = cluster
    assert phase(doc, "upload-certs")["status"] == "ran" and phase(doc, "upload-certs")["changed"]
    stored = secret(node, "kubeadm-certs")
    assert set(stored.data) == KUBEADM_DATA_KEYS
    pki = node.rootfs / "etc/kubernetes/pki"
    for key, value in stored.data.items():
        assert independent_open(base64.b64decode(value), KEY) == (pki / FILE_OF[key]).read_bytes(), key
    with pytest.raises(InvalidTag):
        independent_open(base64.b64decode(stored.data["ca.key"]), "00" * 32)


def test_kubeadm_certs_is_owned_by_a_token_that_expires_after_the_ttl(
    cluster: tuple[Node, dict[str, Any], str],
) -> None:
    node, _, _ = cluster
    (ref,) = secret(node, "kubeadm-certs").metadata.owner_references
    owner = secret(node, ref.name)
    assert (ref.kind, ref.api_version, ref.uid, ref.controller) == ("Secret", "v1", owner.metadata.uid, True)
    assert owner.type == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in owner.data.items()}
    assert not [k for k in data if k.startswith("usage-")]  # it authenticates nobody
    expires = datetime.fromisoformat(data["expiration"].replace("Z", "+00:00"))
    left = expires - datetime.now(UTC)
    assert timedelta(minutes=85) < left <= timedelta(minutes=90)
    assert not (owner.metadata.labels or {})  # init's bootstrap-token phase must never adopt it


def test_joining_nodes_may_read_kubeadm_certs(cluster: tuple[Node, dict[str, Any], str]) -> None:
    node, _, _ = cluster
    rbac = RbacAuthorizationV1Api(admin_client(node.rootfs))
    role = rbac.read_namespaced_role("kubeadm:kubeadm-certs", "kube-system")
    assert role.rules[0].resource_names == ["kubeadm-certs"] and role.rules[0].verbs == ["get"]
    binding = rbac.read_namespaced_role_binding("kubeadm:kubeadm-certs", "kube-system")
    assert [s.name for s in binding.subjects] == ["system:bootstrappers:kubeadm:default-node-token"]


def test_the_key_is_only_in_show_join_command_details(cluster: tuple[Node, dict[str, Any], str]) -> None:
    _, doc, stderr = cluster
    details = phase(doc, "show-join-command")["details"]
    assert details["certificateKey"] == KEY
    assert details["caCertHashes"] == [details["caCertHash"]]
    assert details["token"] and details["token"].split(".")[0] in details["joinCommand"]
    assert details["controlPlaneJoinCommand"].endswith("--control-plane --certificate-key <redacted>")
    rest = json.dumps({**doc, "phases": [p for p in doc["phases"] if p["path"] != "show-join-command"]})
    assert KEY not in rest and KEY not in stderr
    assert details["token"].split(".")[1] not in rest + stderr


def test_a_rerun_with_the_same_key_changes_nothing_and_keeps_signer_keys(
    cluster: tuple[Node, dict[str, Any], str],
) -> None:
    node, _, _ = cluster
    core = CoreV1Api(admin_client(node.rootfs))
    before = secret(node, "kubeadm-certs")
    # The stand-in's bootstrap signer (as kube-controller-manager's) adds a detached JWS per signing
    # token next to our kubeconfig, a little after init: wait for it.
    deadline = time.monotonic() + 20
    while True:
        info = core.read_namespaced_config_map("cluster-info", "kube-public")
        signatures = {k: v for k, v in info.data.items() if k.startswith("jws-kubeconfig-")}
        if signatures or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert signatures, "the bootstrap signer never signed cluster-info"

    code, doc, _, stderr = run(node, "--upload-certs", "--certificate-key-ttl", "90m")
    assert code == 0, stderr
    changed = {p["path"]: p["changed"] for p in doc["phases"]}
    assert not any(changed.values()), changed
    after = secret(node, "kubeadm-certs")
    assert after.metadata.resource_version == before.metadata.resource_version
    kept = core.read_namespaced_config_map("cluster-info", "kube-public").data
    assert {k: v for k, v in kept.items() if k.startswith("jws-kubeconfig-")} == signatures
    assert kept["kubeconfig"] == info.data["kubeconfig"]
    assert any("cluster-info is up to date" in m for m in phase(doc, "bootstrap-token")["messages"])


def test_a_new_key_reseals_under_a_new_owner(cluster: tuple[Node, dict[str, Any], str]) -> None:
    node, _, _ = cluster
    old_owner = secret(node, "kubeadm-certs").metadata.owner_references[0].name
    other = "ab" * 32
    code, doc, _, stderr = run(node, "phase", "upload-certs", "--upload-certs", "--certificate-key", other)
    assert code == 0, stderr
    assert phase(doc, "upload-certs")["changed"] is True
    said = phase(doc, "upload-certs")["messages"]
    assert any("is sealed under another key: uploading again" in m for m in said), said
    stored = secret(node, "kubeadm-certs")
    assert stored.metadata.owner_references[0].name != old_owner
    ca = (node.rootfs / "etc/kubernetes/pki/ca.key").read_bytes()
    assert independent_open(base64.b64decode(stored.data["ca.key"]), other) == ca
    assert other not in json.dumps(doc) and other not in stderr  # no show-join-command in this run


def test_text_output_prints_the_key_once_in_the_control_plane_command(
    cluster: tuple[Node, dict[str, Any], str],
) -> None:
    node, _, _ = cluster
    code, _, stdout, stderr = run(node, "--upload-certs", "--certificate-key", KEY, output_json=False)
    assert code == 0, stderr
    assert (stdout + stderr).count(KEY) == 1
    assert f"--control-plane --certificate-key {KEY}\n" in stdout


def test_the_upload_phase_alone_prints_the_key_at_the_end(cluster: tuple[Node, dict[str, Any], str]) -> None:
    node, _, _ = cluster
    code, _, stdout, stderr = run(node, "phase", "upload-certs", "--upload-certs", output_json=False)
    assert code == 0, stderr
    key = stdout.strip().splitlines()[-1]
    assert len(cert_upload.decode_key(key)) == 32 and key not in stderr
    ca = (node.rootfs / "etc/kubernetes/pki/ca.crt").read_bytes()
    assert independent_open(base64.b64decode(secret(node, "kubeadm-certs").data["ca.crt"]), key) == ca


def test_without_upload_certs_the_phase_is_skipped(cluster: tuple[Node, dict[str, Any], str]) -> None:
    node, _, _ = cluster
    code, doc, _, stderr = run(node, "phase", "upload-certs")
    assert code == 0, stderr
    assert phase(doc, "upload-certs")["status"] == "skipped"


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--certificate-key-ttl", "0"), 2, "--certificate-key-ttl"),
        (("--certificate-key-ttl", "5"), 2, "--certificate-key-ttl"),
        (("--certificate-key", "xyz"), 3, "certificateKey"),
    ],
)
def test_bad_upload_flags_are_refused_before_anything_is_written(
    tmp_path: Path, args: tuple[str, ...], code: int, says: str
) -> None:
    node = make_node(tmp_path)
    got, doc, _, stderr = run(node, "--upload-certs", *args)
    assert got == code and says in stderr
    assert doc["ok"] is False
    assert not (node.rootfs / "etc/kubernetes").exists()


def test_a_copy_deleted_soon_is_uploaded_again(cluster: tuple[Node, dict[str, Any], str]) -> None:
    """A join that starts now must still find the Secret: a copy whose owner token expires within the
    reuse margin is sealed again under a new owner; one that lives long enough is kept."""
    node, _, _ = cluster
    key = "cd" * 32

    said: list[str] = []

    def upload(ttl: str) -> bool:
        code, doc, _, stderr = run(
            node,
            "phase",
            "upload-certs",
            "--upload-certs",
            "--certificate-key",
            key,
            "--certificate-key-ttl",
            ttl,
        )
        assert code == 0, stderr
        said[:] = phase(doc, "upload-certs")["messages"]
        return bool(phase(doc, "upload-certs")["changed"])

    assert upload("4m") is True
    owner = secret(node, "kubeadm-certs").metadata.owner_references[0].name
    # A 4-minute copy against a 4-minute request: the margin is half of that, and about 4 minutes are left.
    assert upload("4m") is False
    assert secret(node, "kubeadm-certs").metadata.owner_references[0].name == owner
    # Against the default 15-minute margin (a 90-minute request), 4 minutes are too few.
    assert upload("90m") is True
    assert any("is deleted within the reuse margin" in m for m in said), said
    assert secret(node, "kubeadm-certs").metadata.owner_references[0].name != owner
