"""JoinConfiguration loading: valid documents, every refused field named, token/hash formats, flags win."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bootstrap.config.join import load_join_config
from bootstrap.config.kubeadm_flags import JOIN_FLAG_FIELDS, JOIN_FLAGS, KUBEADM_FLAGS
from bootstrap.config.netdefaults import HostFacts
from bootstrap.errors import EXIT_INVALID_CONFIG, ConfigError

HOST = HostFacts(hostname=lambda: "Worker1", default_ipv4=lambda: "192.0.2.20")
TOKEN = "abcdef.0123456789abcdef"
SECRET = "0123456789abcdef"
HASH = "sha256:" + "ab" * 32
KEY = "0f" * 32
JOIN = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
KUBELET_DOC = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
TOKEN_DISCOVERY = (
    JOIN + "discovery:\n  bootstrapToken:\n"
    f"    token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: ['{HASH}']\n"
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "join.yaml"
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str | None, overrides: dict[str, object] | None = None) -> str:
    path = write(tmp_path, text) if text is not None else None
    with pytest.raises(ConfigError) as info:
        load_join_config(path, overrides, host=HOST)
    assert info.value.exit_code == EXIT_INVALID_CONFIG
    return "\n".join(info.value.problems)


# ---- valid documents ----
def test_token_discovery_document_is_loaded_and_defaulted(tmp_path: Path) -> None:
    cfg = load_join_config(write(tmp_path, TOKEN_DISCOVERY), host=HOST)
    join = cfg.join
    assert join.discovery.bootstrap_token is not None
    assert join.discovery.bootstrap_token.api_server_endpoint == "10.0.0.1:6443"
    assert join.discovery.bootstrap_token.ca_cert_hashes == [HASH]
    # kubeadm's defaults: the TLS bootstrap token is the discovery token, the CA under /etc/kubernetes/pki.
    assert join.discovery.tls_bootstrap_token == TOKEN
    assert join.ca_cert_path == "/etc/kubernetes/pki/ca.crt"
    assert cfg.node_name == "worker1"
    assert not cfg.control_plane
    assert join.node_registration.taints is None
    assert cfg.warnings == []


def test_timeouts_have_kubeadms_v1beta4_defaults_and_can_be_set(tmp_path: Path) -> None:
    defaults = load_join_config(write(tmp_path, TOKEN_DISCOVERY), host=HOST).join.timeouts
    assert (
        defaults.control_plane_component_health_check,
        defaults.kubelet_health_check,
        defaults.kubernetes_api_call,
        defaults.etcd_api_call,
        defaults.tls_bootstrap,
        defaults.discovery,
        defaults.upgrade_manifests,
    ) == (
        timedelta(minutes=4),
        timedelta(minutes=4),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=5),
        timedelta(minutes=5),
        timedelta(minutes=5),
    )
    text = TOKEN_DISCOVERY + "timeouts:\n  discovery: 1m30s\n  tlsBootstrap: 10m\n"
    set_ = load_join_config(write(tmp_path, text), host=HOST).join.timeouts
    assert (set_.discovery, set_.tls_bootstrap) == (timedelta(seconds=90), timedelta(minutes=10))


def test_file_discovery_control_plane_and_kubelet_document(tmp_path: Path) -> None:
    text = (
        JOIN + "discovery:\n  file:\n    kubeConfigPath: https://lb.example.com/cluster-info.yaml\n"
        f"  tlsBootstrapToken: {TOKEN}\n"
        f"controlPlane:\n  localAPIEndpoint:\n    bindPort: 7443\n  certificateKey: {KEY}\n"
        "caCertPath: /srv/pki/ca.crt\nskipPhases: [preflight]\ndryRun: true\n"
        "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n"
    )
    cfg = load_join_config(write(tmp_path, text), host=HOST)
    join = cfg.join
    assert join.discovery.file is not None
    assert join.discovery.file.kube_config_path == "https://lb.example.com/cluster-info.yaml"
    assert join.discovery.bootstrap_token is None
    assert join.control_plane is not None
    # The advertise address is detected from the default route, as for init.
    assert join.control_plane.local_api_endpoint.advertise_address == "192.0.2.20"
    assert join.control_plane.local_api_endpoint.bind_port == 7443
    assert join.control_plane.certificate_key == KEY
    assert (join.ca_cert_path, join.skip_phases, join.dry_run) == ("/srv/pki/ca.crt", ["preflight"], True)
    assert cfg.kubelet == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
    }


def test_unacted_fields_and_ignored_kinds_warn_by_name(tmp_path: Path) -> None:
    text = (
        TOKEN_DISCOVERY + "patches:\n  directory: /etc/kubeadm/patches\n"
        "nodeRegistration:\n  imagePullSerial: false\n"
        "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        "---\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n"
    )
    warnings = "\n".join(load_join_config(write(tmp_path, text), host=HOST).warnings)
    assert "patches.directory: is set but kube-bootstrap does not act on it" in warnings
    assert "nodeRegistration.imagePullSerial: is set but kube-bootstrap does not act on it" in warnings
    assert "document 2 (kubeadm.k8s.io/v1beta4 ClusterConfiguration): ignored" in warnings
    assert "document 3 (kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration): ignored" in warnings


# ---- refused documents: each names its field ----
BAD: list[tuple[str, str, list[str]]] = [
    ("unknown top-level field", TOKEN_DISCOVERY + "clusterName: x\n", ["clusterName: unknown field"]),
    (
        "unknown discovery field",
        JOIN + "discovery:\n  timeout: 5m\n  file:\n    kubeConfigPath: /etc/k.conf\n",
        ["discovery.timeout: unknown field"],
    ),
    (
        "unknown bootstrapToken field",
        TOKEN_DISCOVERY + "    caCertHash: x\n",
        ["discovery.bootstrapToken.caCertHash: unknown field"],
    ),
    (
        "unknown controlPlane field",
        TOKEN_DISCOVERY + "controlPlane:\n  advertiseAddress: 10.0.0.2\n",
        ["controlPlane.advertiseAddress: unknown field"],
    ),
    (
        "wrong type for unsafeSkipCAVerification",
        TOKEN_DISCOVERY + "    unsafeSkipCAVerification: 'yes'\n",
        ["discovery.bootstrapToken.unsafeSkipCAVerification: expected true or false"],
    ),
    ("no discovery", JOIN, ["discovery: one of bootstrapToken or file must be set"]),
    (
        "both discovery methods",
        TOKEN_DISCOVERY + "  file:\n    kubeConfigPath: /etc/k.conf\n",
        ["discovery: bootstrapToken and file are mutually exclusive"],
    ),
    (
        "no token",
        JOIN
        + f"discovery:\n  bootstrapToken:\n    apiServerEndpoint: h:6443\n    caCertHashes: ['{HASH}']\n",
        ["discovery.bootstrapToken.token: is required"],
    ),
    (
        "no endpoint",
        JOIN + f"discovery:\n  bootstrapToken:\n    token: {TOKEN}\n    unsafeSkipCAVerification: true\n",
        ["discovery.bootstrapToken.apiServerEndpoint: is required"],
    ),
    (
        "endpoint without port",
        TOKEN_DISCOVERY.replace("10.0.0.1:6443", "10.0.0.1"),
        ['discovery.bootstrapToken.apiServerEndpoint: "10.0.0.1" has no port'],
    ),
    (
        "endpoint with bad port",
        TOKEN_DISCOVERY.replace("10.0.0.1:6443", "10.0.0.1:70000"),
        ["discovery.bootstrapToken.apiServerEndpoint:", "not a valid port"],
    ),
    (
        "neither pins nor unsafe skip",
        JOIN + f"discovery:\n  bootstrapToken:\n    token: {TOKEN}\n    apiServerEndpoint: h:6443\n",
        ["discovery.bootstrapToken.caCertHashes: token discovery without a CA pin is unsafe"],
    ),
    (
        "hash of an unknown format",
        TOKEN_DISCOVERY.replace(HASH, "md5:" + "ab" * 16),
        ['discovery.bootstrapToken.caCertHashes[0]: "md5:', "sha256 is the only format"],
    ),
    (
        "hash too short",
        TOKEN_DISCOVERY.replace(HASH, HASH[:-2]),
        ["discovery.bootstrapToken.caCertHashes[0]:", "not sha256:<64 hex characters>"],
    ),
    (
        "hash not hex",
        TOKEN_DISCOVERY.replace(HASH, "sha256:" + "zz" * 32),
        ["discovery.bootstrapToken.caCertHashes[0]:"],
    ),
    (
        "bad TLS bootstrap token",
        TOKEN_DISCOVERY + "  tlsBootstrapToken: ABCDEF.0123456789abcdef\n",
        ['discovery.tlsBootstrapToken: "ABCDEF.<redacted>" does not match'],
    ),
    (
        "relative discovery file",
        JOIN + "discovery:\n  file:\n    kubeConfigPath: k.conf\n",
        ['discovery.file.kubeConfigPath: "k.conf" is neither an absolute path nor an https URL'],
    ),
    (
        "http discovery URL",
        JOIN + "discovery:\n  file:\n    kubeConfigPath: http://lb/k.conf\n",
        ["discovery.file.kubeConfigPath:", "https"],
    ),
    (
        "empty discovery file",
        JOIN + "discovery:\n  file: {}\n",
        ["discovery.file.kubeConfigPath: is required"],
    ),
    ("relative caCertPath", TOKEN_DISCOVERY + "caCertPath: pki/ca.crt\n", ['caCertPath: "pki/ca.crt"']),
    (
        "bad control-plane address",
        TOKEN_DISCOVERY + "controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.0.0.300\n",
        ['controlPlane.localAPIEndpoint.advertiseAddress: "10.0.0.300" is not a valid IP address'],
    ),
    (
        "bad control-plane port",
        TOKEN_DISCOVERY + "controlPlane:\n  localAPIEndpoint:\n    bindPort: 70000\n",
        ["controlPlane.localAPIEndpoint.bindPort: 70000 is not a valid port"],
    ),
    (
        "bad certificate key",
        TOKEN_DISCOVERY + "controlPlane:\n  certificateKey: abc\n",
        ["controlPlane.certificateKey: must be a hex-encoded 32-byte key"],
    ),
    (
        "bad node name",
        TOKEN_DISCOVERY + "nodeRegistration:\n  name: Node_A\n",
        ['nodeRegistration.name: "Node_A" is not a valid DNS-1123 subdomain'],
    ),
    (
        "bad CRI socket",
        TOKEN_DISCOVERY + "nodeRegistration:\n  criSocket: tcp://x\n",
        ['nodeRegistration.criSocket: "tcp://x" is not a unix:// URL'],
    ),
    ("bad timeout", TOKEN_DISCOVERY + "timeouts:\n  discovery: 5 minutes\n", ["timeouts.discovery:"]),
    ("zero timeout", TOKEN_DISCOVERY + "timeouts:\n  tlsBootstrap: 0s\n", ["timeouts.tlsBootstrap: must be"]),
    ("unknown timeout", TOKEN_DISCOVERY + "timeouts:\n  join: 1m\n", ["timeouts.join: unknown field"]),
    ("empty skip phase", TOKEN_DISCOVERY + "skipPhases: ['']\n", ["skipPhases[0]:"]),
    (
        "kubelet port",
        TOKEN_DISCOVERY + "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "healthzPort: 99999\n",
        ["KubeletConfiguration.healthzPort:"],
    ),
    (
        "init and join in one file",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n" + TOKEN_DISCOVERY,
        ["document 1 (kubeadm.k8s.io/v1beta4 InitConfiguration): a join config file must not hold"],
    ),
    (
        "no JoinConfiguration",
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n",
        ["no JoinConfiguration kind was found"],
    ),
    (
        "two JoinConfigurations",
        TOKEN_DISCOVERY + "---\n" + TOKEN_DISCOVERY,
        ["document 2 (kubeadm.k8s.io/v1beta4 JoinConfiguration): a second JoinConfiguration"],
    ),
    (
        "two KubeletConfigurations",
        TOKEN_DISCOVERY + "---\n" + KUBELET_DOC + "---\n" + KUBELET_DOC,
        ["document 3 (kubelet.config.k8s.io/v1beta1 KubeletConfiguration): a second KubeletConfiguration"],
    ),
    (
        "v1beta3",
        TOKEN_DISCOVERY.replace("v1beta4", "v1beta3"),
        ["kubeadm.k8s.io/v1beta3 is not supported"],
    ),
    ("unknown kind", "apiVersion: v1\nkind: Pod\n", ['unknown apiVersion/kind "v1" "Pod"']),
]


@pytest.mark.parametrize(("text", "fragments"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_field_is_named(tmp_path: Path, text: str, fragments: list[str]) -> None:
    message = problems_of(tmp_path, text)
    for fragment in fragments:
        assert fragment in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = TOKEN_DISCOVERY.replace(HASH, "sha1:00") + "caCertPath: x\nnodeRegistration:\n  name: A_B\n"
    message = problems_of(tmp_path, text)
    for path in ("caCertHashes[0]", "caCertPath", "nodeRegistration.name"):
        assert path in message


@pytest.mark.parametrize(
    "token",
    [
        "abcdef.0123456789abcdeX",
        "abcde.0123456789abcdef0",
        "abcdef0123456789abcdef",
        "abcdef.0123456789abcde",
    ],
)
def test_malformed_token_is_refused_without_its_secret(tmp_path: Path, token: str) -> None:
    message = problems_of(tmp_path, TOKEN_DISCOVERY.replace(TOKEN, token))
    assert "discovery.bootstrapToken.token:" in message
    secret = token.split(".", 1)[-1]
    assert secret not in message


def test_hash_format_is_case_insensitive_as_kubeadm(tmp_path: Path) -> None:
    upper = "SHA256:" + "AB" * 32
    cfg = load_join_config(write(tmp_path, TOKEN_DISCOVERY.replace(HASH, upper)), host=HOST)
    assert cfg.join.discovery.bootstrap_token is not None
    assert cfg.join.discovery.bootstrap_token.ca_cert_hashes == [upper]


def test_certificate_key_is_never_echoed(tmp_path: Path) -> None:
    key = "secret-key-" + "9" * 40
    message = problems_of(tmp_path, TOKEN_DISCOVERY + f"controlPlane:\n  certificateKey: {key}\n")
    assert "controlPlane.certificateKey" in message
    assert key not in message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (TOKEN_DISCOVERY.replace(TOKEN, "123456.7890123456"), "discovery.bootstrapToken.token"),
        (TOKEN_DISCOVERY + "  tlsBootstrapToken: 123456.7890123456\n", "discovery.tlsBootstrapToken"),
        (
            TOKEN_DISCOVERY + "controlPlane:\n  certificateKey: 123456.7890123456\n",
            "controlPlane.certificateKey",
        ),
    ],
)
def test_a_credential_of_the_wrong_type_is_named_not_quoted(tmp_path: Path, text: str, path: str) -> None:
    message = problems_of(tmp_path, text)
    assert f"{path}: expected a string" in message
    assert "7890123456" not in message
    assert message.count(path) == 1


# ---- flags ----
def test_flags_alone_make_a_token_join() -> None:
    cfg = load_join_config(
        None,
        {"token": TOKEN, "discovery-token-ca-cert-hash": [HASH, HASH.replace("ab", "cd")], "node-name": "n1"},
        api_server_endpoint="cp.example.com:6443",
        host=HOST,
    )
    bt = cfg.join.discovery.bootstrap_token
    assert bt is not None
    assert (bt.token, bt.api_server_endpoint) == (TOKEN, "cp.example.com:6443")
    assert bt.ca_cert_hashes == [HASH, HASH.replace("ab", "cd")]
    assert cfg.join.discovery.tls_bootstrap_token == TOKEN
    assert cfg.node_name == "n1"


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    other = "zyxwvu.fedcba9876543210"
    text = TOKEN_DISCOVERY + "nodeRegistration:\n  name: from-file\ncontrolPlane:\n  certificateKey: " + KEY
    cfg = load_join_config(
        write(tmp_path, text + "\n"),
        {
            "discovery-token": other,
            "tls-bootstrap-token": TOKEN,
            "discovery-token-ca-cert-hash": ["sha256:" + "cd" * 32],
            "node-name": "from-flag",
            "certificate-key": "a1" * 32,
            "apiserver-advertise-address": "10.0.0.9",
            "apiserver-bind-port": "7443",
        },
        api_server_endpoint="10.0.0.2:6443",
        host=HOST,
    )
    join = cfg.join
    assert join.discovery.bootstrap_token is not None
    assert join.discovery.bootstrap_token.token == other
    assert join.discovery.bootstrap_token.api_server_endpoint == "10.0.0.2:6443"
    assert join.discovery.bootstrap_token.ca_cert_hashes == ["sha256:" + "cd" * 32]
    assert join.discovery.tls_bootstrap_token == TOKEN
    assert cfg.node_name == "from-flag"
    assert join.control_plane is not None
    assert join.control_plane.certificate_key == "a1" * 32
    assert join.control_plane.local_api_endpoint.advertise_address == "10.0.0.9"
    assert join.control_plane.local_api_endpoint.bind_port == 7443


def test_token_flag_yields_to_the_specific_token_flags() -> None:
    other = "zyxwvu.fedcba9876543210"
    cfg = load_join_config(
        None,
        {"token": TOKEN, "tls-bootstrap-token": other, "discovery-token-unsafe-skip-ca-verification": True},
        api_server_endpoint="h:6443",
        host=HOST,
    )
    bt = cfg.join.discovery.bootstrap_token
    assert bt is not None
    assert (bt.token, cfg.join.discovery.tls_bootstrap_token) == (TOKEN, other)
    assert bt.unsafe_skip_ca_verification is True


def test_discovery_file_flag_replaces_the_files_token_discovery(tmp_path: Path) -> None:
    cfg = load_join_config(
        write(tmp_path, TOKEN_DISCOVERY), {"discovery-file": "/etc/kubernetes/discovery.conf"}, host=HOST
    )
    assert cfg.join.discovery.bootstrap_token is None
    assert cfg.join.discovery.file is not None
    assert cfg.join.discovery.file.kube_config_path == "/etc/kubernetes/discovery.conf"


def test_control_plane_flag_makes_a_control_plane_join(tmp_path: Path) -> None:
    plain = load_join_config(write(tmp_path, TOKEN_DISCOVERY), {"control-plane": False}, host=HOST)
    assert not plain.control_plane
    cfg = load_join_config(
        write(tmp_path, TOKEN_DISCOVERY), {"control-plane": True, "certificate-key": KEY}, host=HOST
    )
    assert cfg.join.control_plane is not None
    assert cfg.join.control_plane.certificate_key == KEY
    assert cfg.join.control_plane.local_api_endpoint.bind_port == 6443


def test_control_plane_flags_without_control_plane_are_ignored_with_a_warning(tmp_path: Path) -> None:
    cfg = load_join_config(write(tmp_path, TOKEN_DISCOVERY), {"certificate-key": KEY}, host=HOST)
    assert cfg.join.control_plane is None
    assert any(w.startswith("--certificate-key: ignored") for w in cfg.warnings)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"token": "bad"}, "--token (discovery.bootstrapToken.token): the value does not match"),
        ({"discovery-token-ca-cert-hash": ["sha256:12"]}, "--discovery-token-ca-cert-hash"),
        ({"discovery-file": "rel.conf"}, "--discovery-file (discovery.file.kubeConfigPath)"),
        ({"node-name": "Bad_Name"}, "--node-name (nodeRegistration.name)"),
        (
            {"control-plane": True, "apiserver-bind-port": 0x10000},
            "--apiserver-bind-port (controlPlane.localAPIEndpoint.bindPort)",
        ),
        (
            {"control-plane": True, "apiserver-advertise-address": "nope"},
            "--apiserver-advertise-address (controlPlane.localAPIEndpoint.advertiseAddress)",
        ),
        (
            {"control-plane": True, "certificate-key": "xyz"},
            "--certificate-key (controlPlane.certificateKey)",
        ),
    ],
)
def test_bad_flag_is_named(tmp_path: Path, overrides: dict[str, object], fragment: str) -> None:
    assert fragment in problems_of(tmp_path, TOKEN_DISCOVERY, overrides)


def test_an_unknown_override_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown override 'pod-network-cidr'"):
        load_join_config(None, {"pod-network-cidr": "10.0.0.0/8"}, host=HOST)


def test_join_flags_stay_off_inits_table() -> None:
    init_fields = {(flag.document, flag.field) for flag in KUBEADM_FLAGS}
    assert not any(document == "JoinConfiguration" for document, _ in init_fields)
    assert {flag.document for flag in JOIN_FLAGS} == {"JoinConfiguration"}
    assert set(JOIN_FLAG_FIELDS) == {
        "token",
        "discovery-token",
        "tls-bootstrap-token",
        "discovery-token-ca-cert-hash",
        "discovery-token-unsafe-skip-ca-verification",
        "discovery-file",
        "control-plane",
        "certificate-key",
        "apiserver-advertise-address",
        "apiserver-bind-port",
        "node-name",
    }
    assert [f.names[0] for f in JOIN_FLAGS if f.repeatable] == ["discovery-token-ca-cert-hash"]


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_join_config(tmp_path / "absent.yaml", host=HOST)


def test_a_file_may_leave_discovery_to_the_flags_only_when_the_caller_says_so(tmp_path: Path) -> None:
    text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: w1\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        load_join_config(path)
    assert any(p.startswith("discovery: one of bootstrapToken or file") for p in refused.value.problems)
    assert load_join_config(path, discovery_from_flags=True).join.node_registration.name == "w1"
    bad = write(tmp_path, text + "caCertPath: relative/ca.crt\n")
    with pytest.raises(ConfigError) as still:
        load_join_config(bad, discovery_from_flags=True)
    assert [p.split(":")[0] for p in still.value.problems] == ["caCertPath"]
