"""The KubeletConfiguration we write and the static pod directory we pick, computed without a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootstrap.config import Config, load_config
from bootstrap.config.dnsaddress import dns_service_ip
from bootstrap.config.netdefaults import HostFacts
from bootstrap.errors import PhaseError
from bootstrap.host.kubelet import DEFAULT_STATIC_POD_PATH, read_kubelet_config
from bootstrap.host.kubelet_config import deep_merge, kubelet_settings, static_pod_path

HOST = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: "192.0.2.10")
HEAD = """apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
networking:
  serviceSubnet: 10.112.0.0/12
"""
KUBELET = """---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
"""


def config(tmp_path: Path, kubelet: str | None = None, version: str = "v1.33.1") -> Config:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(HEAD.format(version=version) + (KUBELET + kubelet if kubelet is not None else ""))
    return load_config(path, {}, host=HOST)


def test_the_dns_address_is_the_tenth_of_the_first_service_range() -> None:
    assert dns_service_ip("10.96.0.0/12") == "10.96.0.10"
    assert dns_service_ip("fd00:10::/108, 10.96.0.0/12") == "fd00:10::a"


def test_deep_merge_merges_mappings_and_replaces_everything_else() -> None:
    base = {"a": {"b": 1, "c": 2}, "list": [1, 2], "keep": True}
    merged = deep_merge(base, {"a": {"c": 3, "d": 4}, "list": [9]})
    assert merged == {"a": {"b": 1, "c": 3, "d": 4}, "list": [9], "keep": True}
    assert base == {"a": {"b": 1, "c": 2}, "list": [1, 2], "keep": True}  # the defaults are not changed


def test_without_a_users_document_the_defaults_are_kubeadms(tmp_path: Path) -> None:
    settings = kubelet_settings(config(tmp_path), "/etc/kubernetes/manifests")
    doc = settings.document
    assert settings.warnings == []
    assert doc["kind"] == "KubeletConfiguration"
    assert doc["clusterDNS"] == ["10.112.0.10"]
    assert doc["clusterDomain"] == "cluster.local"
    assert doc["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert doc["staticPodPath"] == "/etc/kubernetes/manifests"
    assert doc["rotateCertificates"] is True
    assert "containerRuntimeEndpoint" not in doc  # before v1.34 it is a flag


def test_the_users_document_is_merged_over_the_defaults(tmp_path: Path) -> None:
    kubelet = "maxPods: 50\nauthentication:\n  webhook:\n    cacheTTL: 2m0s\n"
    doc = kubelet_settings(config(tmp_path, kubelet), "/etc/kubernetes/manifests").document
    assert doc["maxPods"] == 50
    assert doc["authentication"]["webhook"] == {"cacheTTL": "2m0s", "enabled": True}
    assert doc["authentication"]["anonymous"] == {"enabled": False}


def test_the_run_decides_the_static_pod_path_even_over_the_users_document(tmp_path: Path) -> None:
    doc = kubelet_settings(config(tmp_path, "staticPodPath: /srv/pods\n"), "/elsewhere").document
    assert doc["staticPodPath"] == "/elsewhere"


def test_certificate_rotation_is_forced_on_with_a_warning(tmp_path: Path) -> None:
    settings = kubelet_settings(config(tmp_path, "rotateCertificates: false\n"), DEFAULT_STATIC_POD_PATH)
    assert settings.document["rotateCertificates"] is True
    assert settings.warnings == ["KubeletConfiguration.rotateCertificates: forced to true, as kubeadm does"]


@pytest.mark.parametrize(
    ("version", "kubelet", "expected"),
    [
        ("v1.34.0", None, "unix:///var/run/containerd/containerd.sock"),
        ("v1.34.0", "containerRuntimeEndpoint: unix:///run/crio.sock\n", "unix:///run/crio.sock"),
        ("v1.33.1", None, None),
    ],
)
def test_from_v1_34_the_runtime_endpoint_is_in_the_config_unless_the_user_set_one(
    tmp_path: Path, version: str, kubelet: str | None, expected: str | None
) -> None:
    doc = kubelet_settings(config(tmp_path, kubelet, version), DEFAULT_STATIC_POD_PATH).document
    assert doc.get("containerRuntimeEndpoint") == expected


def test_the_static_pod_path_comes_from_the_first_source_that_names_one() -> None:
    explicit, users, on_disk = {"staticPodPath": "/a"}, {"staticPodPath": "/b"}, {"staticPodPath": "/c"}
    assert static_pod_path(explicit, users, on_disk) == "/a"
    assert static_pod_path(None, users, on_disk) == "/b"
    assert static_pod_path({}, {"maxPods": 5}, on_disk) == "/c"
    assert static_pod_path(None, None, {"staticPodPath": 7}) == DEFAULT_STATIC_POD_PATH  # not a path
    assert static_pod_path(None, None, None) == DEFAULT_STATIC_POD_PATH


def test_the_kubelet_config_on_disk_is_read_and_its_problems_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    assert read_kubelet_config(path) is None  # a fresh node: none yet
    path.write_text("staticPodPath: /srv/pods\n")
    assert read_kubelet_config(path) == {"staticPodPath": "/srv/pods"}
    path.write_text("")
    assert read_kubelet_config(path) is None
    broken = (("staticPodPath: [\n", "cannot read the kubelet config"), ("- a\n", "not a Kubelet"))
    for text, fragment in broken:
        path.write_text(text)
        with pytest.raises(PhaseError, match=f"^{path}: {fragment}"):
            read_kubelet_config(path)
    with pytest.raises(PhaseError, match=f"^{tmp_path}: cannot read the kubelet config"):
        read_kubelet_config(tmp_path)  # a directory: an OSError other than a missing file


def test_hostname_override_is_read_from_the_flags_file(tmp_path: Path) -> None:
    from bootstrap.host.kubelet import hostname_override

    flags = tmp_path / "kubeadm-flags.env"
    assert hostname_override(flags) is None  # no file
    flags.write_text('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///x.sock"\n')
    assert hostname_override(flags) is None
    flags.write_text('KUBELET_KUBEADM_ARGS="--hostname-override=cp-1 --pod-infra-container-image=p"\n')
    assert hostname_override(flags) == "cp-1"
    flags.write_text('KUBELET_KUBEADM_ARGS="--node-ip=10.0.0.1 --hostname-override=Worker.A"\n')
    assert hostname_override(flags) == "Worker.A"
