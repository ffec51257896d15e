"""`bootstrap phase kubelet-start`: the kubelet's config and flags, merged with the user's document."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import CliRunner

CONFIG = """apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp1
  kubeletExtraArgs:
  - name: v
    value: "4"
localAPIEndpoint:
  advertiseAddress: 10.0.0.1
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.33.1
networking:
  serviceSubnet: 10.112.0.0/12
  dnsDomain: example.internal
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
maxPods: 50
staticPodPath: /etc/kubernetes/pods
rotateCertificates: false
authentication:
  webhook:
    cacheTTL: 2m0s
"""


def test_kubelet_config_merges_the_users_document_over_kubeadms_defaults(
    cli: CliRunner, rootfs: Path, tmp_path: Path
) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(CONFIG)
    result = cli("phase", "kubelet-start", "--config", str(config), "--rootfs", str(rootfs))
    assert result.code == 0, result.stderr
    written = yaml.safe_load((rootfs / "var/lib/kubelet/config.yaml").read_text())
    assert written["kind"] == "KubeletConfiguration"
    assert written["maxPods"] == 50  # the user's
    assert written["staticPodPath"] == "/etc/kubernetes/pods"  # the user's, and where manifests go
    assert written["clusterDNS"] == ["10.112.0.10"]  # the 10th address of the service subnet
    assert written["clusterDomain"] == "example.internal"
    assert written["rotateCertificates"] is True  # forced, as kubeadm does, with a warning
    assert "rotateCertificates: forced to true" in result.stderr
    assert written["authentication"]["webhook"] == {"cacheTTL": "2m0s", "enabled": True}  # deep merge
    assert written["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"
    assert written["healthzPort"] == 10248 and written["cgroupDriver"] == "systemd"
    flags = (rootfs / "var/lib/kubelet/kubeadm-flags.env").read_text()
    assert flags.startswith('KUBELET_KUBEADM_ARGS="') and "--v=4" in flags
    # Before v1.34 the runtime endpoint is a flag; from v1.34 it is in the config file.
    assert "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock" in flags
    assert "Not restarting the kubelet (--rootfs" in result.stderr


def test_manifests_follow_the_static_pod_path_of_the_users_kubelet_document(
    cli: CliRunner, rootfs: Path, tmp_path: Path
) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(CONFIG)
    assert cli("phase", "manifests", "--config", str(config), "--rootfs", str(rootfs)).code == 0
    assert (rootfs / "etc/kubernetes/pods/kube-apiserver.yaml").exists()
    assert not (rootfs / "etc/kubernetes/manifests").exists()


def test_a_dry_run_never_touches_the_kubelet_service(cli: CliRunner, rootfs: Path, tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(CONFIG)
    result = cli("phase", "kubelet-start", "--config", str(config), "--dry-run")
    assert result.code == 0, result.stderr
    assert "Not restarting the kubelet (dry run)" in result.stderr
