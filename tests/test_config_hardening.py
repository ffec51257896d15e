"""Regression tests for every class of bad input that once escaped validation (issue 10).

Each row is a config file that used to crash a later phase, hang, or be accepted although kubeadm
refuses it. Now each is refused by ``load_config`` with one line per problem naming the field (or the
file, line and column), by ``config validate`` with exit 3, and by ``phase certs`` with exit 3 and
nothing written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bootstrap.config import HostFacts, load_config
from bootstrap.errors import ConfigError
from tests.conftest import CliRunner, files_under

HOST = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: "192.0.2.10")
INIT = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
CLUSTER = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
KUBELET = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailSwapOn: false\n"

ALIAS_BOMB = (
    CLUSTER
    + "featureGates:\n  x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    + "".join(f"  x{i}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(6))
)
DEEP = CLUSTER + "featureGates: " + "[" * 500 + "]" * 500 + "\n"

# (id, file text, fragments the single problem line must contain)
CASES: list[tuple[str, str, list[str]]] = [
    (
        "validity period overflowing a date",
        CLUSTER + "certificateValidityPeriod: 9999999999h\n",
        ["certificateValidityPeriod:", "out of range for a Go duration"],
    ),
    (
        "duration Go cannot parse (int64 overflow)",
        CLUSTER + "caCertificateValidityPeriod: 87600000h\n",
        ["caCertificateValidityPeriod:", "out of range"],
    ),
    (
        "timeout beyond one year",
        INIT + "timeouts:\n  kubeletHealthCheck: 100000h\n",
        ["timeouts.kubeletHealthCheck: must be at most 8760h"],
    ),
    (
        "external etcd endpoint with an unclosed IPv6 bracket",
        CLUSTER + "etcd:\n  external:\n    endpoints: ['https://[']\n",
        ["etcd.external.endpoints[0]:", '"https://["'],
    ),
    (
        "apiserver secure-port out of range",
        CLUSTER + "apiServer:\n  extraArgs:\n  - name: secure-port\n    value: '99999'\n",
        ["apiServer.extraArgs[0].value: --secure-port:", '"99999"', "1-65535"],
    ),
    (
        "scheduler secure-port in non-ASCII digits",
        CLUSTER
        + "scheduler:\n  extraArgs:\n  - name: secure-port\n    value: '\uff11\uff10\uff12\uff15\uff19'\n",
        ["scheduler.extraArgs[0].value: --secure-port:"],
    ),
    (
        "etcd listen-client-urls with a broken IPv6 host",
        CLUSTER
        + "etcd:\n  local:\n    extraArgs:\n    - name: listen-client-urls\n      value: https://[::1\n",
        ["etcd.local.extraArgs[0].value: --listen-client-urls:"],
    ),
    (
        "node name too long for the kubelet certificate CN",
        INIT + "nodeRegistration:\n  name: " + "n" * 70 + "\n",
        ["nodeRegistration.name:", "70 characters", "at most 52"],
    ),
    (
        "etcd data directory inside the PKI",
        CLUSTER + "etcd:\n  local:\n    dataDir: /etc/kubernetes/pki/ca.crt\n",
        ["etcd.local.dataDir:", "overlaps certificatesDir"],
    ),
    (
        "NUL byte in a path (escaped in YAML)",
        CLUSTER + 'certificatesDir: "/etc/kube\\0pki"\n',
        ["certificatesDir: contains a NUL character"],
    ),
    (
        "path component longer than 255 bytes",
        CLUSTER + "certificatesDir: /etc/" + "k" * 300 + "\n",
        ["certificatesDir:", "component longer than 255 bytes"],
    ),
    (
        "path longer than 4096 bytes",
        CLUSTER + "etcd:\n  local:\n    dataDir: " + "/abcdefgh" * 500 + "\n",
        ["etcd.local.dataDir:", "longer than"],
    ),
    ("deep nesting", DEEP, ["kubeadm.yaml:3:", "nested more than 64 levels deep"]),
    ("alias bomb", ALIAS_BOMB, ["kubeadm.yaml:", "expands to more than 100000 nodes"]),
    (
        "recursive alias",
        CLUSTER + "featureGates: &a [*a]\n",
        ["kubeadm.yaml:3:", "refers to a node containing it"],
    ),
    (
        "control-plane endpoint with an unclosed bracket",
        CLUSTER + "controlPlaneEndpoint: '[::1'\n",
        ["controlPlaneEndpoint:", "missing ']'"],
    ),
    (
        "control-plane endpoint port in full-width digits",
        CLUSTER + "controlPlaneEndpoint: 'api.example.test:\uff16\uff14\uff14\uff13'\n",
        ["controlPlaneEndpoint:", "is not a valid port"],
    ),
    (
        "duplicate mapping key",
        CLUSTER + "clusterName: a\nclusterName: b\n",
        ['kubeadm.yaml:4:1: duplicate key "clusterName" (first set on line 3)'],
    ),
    (
        "service subnet with a trailing space",
        CLUSTER + "networking:\n  serviceSubnet: '10.96.0.0/12 '\n",
        ["networking.serviceSubnet:", '"10.96.0.0/12 "'],
    ),
    (
        "image tag with a trailing newline",
        CLUSTER + 'etcd:\n  local:\n    imageTag: "v1.0\\n"\n',
        ["etcd.local.imageTag:", '"v1.0\\n"'],
    ),
    (
        "node name with a trailing newline",
        INIT + 'nodeRegistration:\n  name: "cp1\\n"\n',
        ["nodeRegistration.name:", '"cp1\\n"'],
    ),
    ("certificateKey of 63 hex characters", INIT + "certificateKey: " + "a" * 63 + "\n", ["certificateKey:"]),
    (
        "certificateKey with a trailing newline",
        INIT + 'certificateKey: "' + "a" * 64 + '\\n"\n',
        ["certificateKey:"],
    ),
    (
        "etcd SAN with an IPv6 zone",
        CLUSTER + "etcd:\n  local:\n    serverCertSANs: ['fe80::1%eth0']\n",
        ["etcd.local.serverCertSANs[0]:", '"fe80::1%eth0"'],
    ),
    (
        "etcd peer SAN that is neither IP nor DNS name",
        CLUSTER + "etcd:\n  local:\n    peerCertSANs: ['not a name']\n",
        ["etcd.local.peerCertSANs[0]:"],
    ),
    (
        "kubelet extra arg that would break kubeadm-flags.env",
        INIT + 'nodeRegistration:\n  kubeletExtraArgs:\n  - name: v\n    value: "2\\"\\nX=1"\n',
        ["nodeRegistration.kubeletExtraArgs[0].value:", "double quote"],
    ),
    (
        "token expiry outside the UTC range",
        INIT + "bootstrapTokens:\n- expires: '9999-12-31T23:59:59-05:00'\n",
        ["bootstrapTokens[0].expires:", "out of range"],
    ),
    (
        "integer too long to convert",
        INIT + "localAPIEndpoint:\n  bindPort: " + "9" * 5000 + "\n",
        ["kubeadm.yaml:4:13: cannot read the value"],
    ),
    (
        "impossible date",
        INIT + "bootstrapTokens:\n- expires: 2024-13-45\n",
        ["kubeadm.yaml:4:12: cannot read"],
    ),
    (
        "kubelet port out of range (preflight binds it)",
        INIT + "---\n" + KUBELET + "port: 99999\n",
        ["KubeletConfiguration.port:", "99999"],
    ),
    (
        "kubelet staticPodPath not absolute",
        INIT + "---\n" + KUBELET + "staticPodPath: manifests\n",
        ["KubeletConfiguration.staticPodPath:", "not an absolute path"],
    ),
    (
        "kubelet healthz port not an integer (the wait reads it)",
        INIT + "---\n" + KUBELET + "healthzPort: ten\n",
        ["KubeletConfiguration.healthzPort:"],
    ),
    ("empty file", "", ["no InitConfiguration or ClusterConfiguration kind was found"]),
    ("document separator only", "---\n", ["no InitConfiguration or ClusterConfiguration kind was found"]),
    ("comments only", "# nothing\n# here\n", ["no InitConfiguration or ClusterConfiguration kind was found"]),
    ("kubelet document only", KUBELET, ["no InitConfiguration or ClusterConfiguration kind was found"]),
    ("NUL byte in the file", CLUSTER + "clusterName: a\x00b\n", ["kubeadm.yaml:3: contains a NUL byte"]),
    (
        "control character in the file",
        CLUSTER + "clusterName: a\x01b\n",
        ["kubeadm.yaml:3:15: character #x0001"],
    ),
    (
        "parser error spread over lines by PyYAML",
        INIT + "localAPIEndpoint:\n  advertiseAddress: [10.0.0.1\n  bindPort: 6443\n",
        ["kubeadm.yaml:5:11: invalid YAML: expected ',' or ']'"],
    ),
    (
        "value with a newline in a message",
        CLUSTER + 'clusterName: "a\\nb"\n',
        ["clusterName:", '"a\\nb"'],
    ),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_naming_the_field(tmp_path: Path, text: str, fragments: list[str]) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), {}, host=HOST)
    assert time.monotonic() - started < 5
    problems = raised.value.problems
    assert len(problems) == 1, problems
    assert "\n" not in problems[0] and problems[0].isprintable(), problems
    for fragment in fragments:
        assert fragment in problems[0]


@pytest.mark.parametrize("text", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_and_phase_certs_refuse_with_exit_3_writing_nothing(
    cli: CliRunner, tmp_path: Path, text: str
) -> None:
    config = write(tmp_path, text)
    validated = cli("config", "validate", "--config", config)
    assert validated.code == 3
    assert validated.stderr.startswith("error: invalid configuration: ")
    assert validated.stderr.count("\n") == 1
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    certs = cli("phase", "certs", "--config", config, "--rootfs", rootfs)
    assert certs.code == 3, certs.stderr
    assert files_under(rootfs) == []


@pytest.mark.parametrize("kind", ["missing", "directory", "not UTF-8"])
def test_an_unusable_config_file_exits_3_naming_it(cli: CliRunner, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "kubeadm.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "not UTF-8":
        path.write_bytes(INIT.encode() + b"clusterName: \xff\xfe\n")
    result = cli("config", "validate", "--config", path)
    assert result.code == 3
    assert f"{path}: " in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_file_larger_than_one_mebibyte_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, INIT + "#" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_config(path, {}, host=HOST)


def test_every_duplicate_key_is_reported(tmp_path: Path) -> None:
    text = CLUSTER + "networking:\n  dnsDomain: a\n  dnsDomain: b\nclusterName: x\nclusterName: y\n"
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text), {}, host=HOST)
    assert [p.split(": ", 1)[1] for p in raised.value.problems] == [
        'duplicate key "dnsDomain" (first set on line 4)',
        'duplicate key "clusterName" (first set on line 6)',
    ]


def test_a_kubelet_document_first_loads_exactly_like_one_placed_last(tmp_path: Path) -> None:
    init = INIT + "nodeRegistration:\n  name: cp1\n"
    last = load_config(write(tmp_path, "---\n".join([init, CLUSTER, KUBELET])), {}, host=HOST)
    first = load_config(write(tmp_path, "---\n".join([KUBELET, init, CLUSTER])), {}, host=HOST)
    assert first == last
    assert first.kubelet == {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failSwapOn": False,
    }


def test_a_kubelet_document_first_runs_phase_certs_like_one_placed_last(
    cli: CliRunner, tmp_path: Path
) -> None:
    init = INIT + "nodeRegistration:\n  name: cp1\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.1\n"
    written: list[list[str]] = []
    for order in ([init, CLUSTER, KUBELET], [KUBELET, init, CLUSTER]):
        run = tmp_path / str(len(written))
        run.mkdir()
        config = run / "kubeadm.yaml"
        config.write_text("---\n".join(order))
        (run / "rootfs").mkdir()
        result = cli("phase", "certs", "--config", config, "--rootfs", run / "rootfs")
        assert result.code == 0, result.stderr
        written.append(files_under(run / "rootfs"))
    assert written[0] == written[1]
    assert "etc/kubernetes/pki/ca.crt" in written[0]


@pytest.mark.parametrize(
    "text",
    [
        CLUSTER + "controlPlaneEndpoint: '[::1]:6443'\n",
        CLUSTER + "controlPlaneEndpoint: 'api.example.test:6443'\n",
        CLUSTER + "etcd:\n  external:\n    endpoints: ['https://[fd00::5]:2379']\n",
        CLUSTER + "etcd:\n  local:\n    serverCertSANs: ['fe80::1', 'etcd.example.test']\n",
        CLUSTER + "networking:\n  serviceSubnet: '10.96.0.0/16,fd00:10:96::/112'\n",
        CLUSTER + "certificateValidityPeriod: 2562047h\n",
        INIT + "nodeRegistration:\n  name: " + "n" * 52 + "\n",
        INIT + "certificateKey: " + "a" * 64 + "\n",
        CLUSTER + "apiServer:\n  extraArgs:\n  - name: secure-port\n    value: '6443'\n",
    ],
)
def test_the_valid_neighbours_of_refused_values_are_accepted(tmp_path: Path, text: str) -> None:
    load_config(write(tmp_path, text), {}, host=HOST)
