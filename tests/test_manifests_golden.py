"""Golden static pod manifests, rendered in-process, plus the key facts asserted outright.

Regenerate the golden files with ``UPDATE_GOLDEN=1 python -m pytest tests/test_manifests_golden.py``
and review the diff against kubeadm (reference §4) before committing it.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap.components.pods import HostView
from bootstrap.components.render import Manifest, components_for, render
from bootstrap.config import Config, HostFacts, load_config

GOLDEN = Path(__file__).parent / "golden"
NODE = "cp1"
ADDRESS = "10.0.0.1"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

CUSTOMISED = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  bindPort: 8443
timeouts:
  controlPlaneComponentHealthCheck: 2m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.2
imageRepository: registry.example.com/k8s
clusterName: prod
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.112.0.0/16
  dnsDomain: corp.local
apiServer:
  extraArgs:
  - name: service-account-issuer
    value: https://issuer.example.com
  - name: service-account-issuer
    value: https://kubernetes.default.svc.corp.local
  - name: enable-admission-plugins
    value: NodeRestriction,PodSecurity
  - name: audit-log-path
    value: /var/log/kubernetes/audit/audit.log
  extraVolumes:
  - name: audit-log
    hostPath: /var/log/kubernetes/audit
    mountPath: /var/log/kubernetes/audit
    readOnly: false
    pathType: DirectoryOrCreate
  extraEnvs:
  - name: NO_PROXY
    value: 10.0.0.0/8,.corp.local
  - name: GOMAXPROCS
    value: "4"
controllerManager:
  extraArgs:
  - name: bind-address
    value: 10.0.0.1
  - name: node-cidr-mask-size
    value: "24"
  extraVolumes:
  - name: ca-certs
    hostPath: /etc/custom-ca
    mountPath: /etc/ssl/certs
    readOnly: true
    pathType: Directory
  extraEnvs:
  - name: POD_IP
    valueFrom:
      fieldRef:
        fieldPath: status.podIP
scheduler:
  extraArgs:
  - name: config
    value: /etc/kubernetes/scheduler-config.yaml
  - name: leader-elect
    value: "false"
  extraVolumes:
  - name: scheduler-config
    hostPath: /etc/kubernetes/scheduler-config.yaml
    mountPath: /etc/kubernetes/scheduler-config.yaml
    readOnly: true
    pathType: File
etcd:
  local:
    imageTag: 3.5.21-0
    dataDir: /data/etcd
    extraArgs:
    - name: snapshot-count
      value: "5000"
    - name: listen-metrics-urls
      value: http://127.0.0.1:2381,http://10.0.0.1:2381
    extraEnvs:
    - name: ETCD_LOG_LEVEL
      value: warn
"""

EXTERNAL_ETCD = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  external:
    endpoints:
    - https://10.0.0.20:2379
    - https://10.0.0.21:2379
    caFile: /etc/etcd/pki/ca.crt
    certFile: /etc/etcd/pki/apiserver-etcd-client.crt
    keyFile: /etc/kubernetes/pki/etcd-client/apiserver-etcd-client.key
"""

# The optional CA dirs and proxy variables the customised case pretends the host has.
CUSTOMISED_HOST_DIRS = {"/etc/ca-certificates", "/usr/share/ca-certificates"}
CUSTOMISED_PROXY = {"HTTPS_PROXY": "http://proxy.corp.local:3128", "NO_PROXY": "localhost"}


@dataclass(frozen=True)
class Case:
    name: str
    overrides: dict[str, object]
    config: str | None = None
    host_dirs: frozenset[str] = frozenset()
    proxy_env: dict[str, str] = field(default_factory=dict)


CASES = {
    c.name: c
    for c in (
        Case("default", {}),
        Case("v1.31", {"kubernetes-version": "v1.31.4"}),
        Case(
            "customised",
            {},
            CUSTOMISED,
            frozenset(CUSTOMISED_HOST_DIRS),
            dict(CUSTOMISED_PROXY),
        ),
        Case("ipv6", {"advertise-address": "fd00::10", "service-cidr": "fd00:10::/108"}),
        Case("external-etcd", {}, EXTERNAL_ETCD),
    )
}


def load_case(case: Case, tmp_dir: Path) -> Config:
    path = None
    if case.config is not None:
        path = tmp_dir / f"{case.name}.yaml"
        path.write_text(case.config)
    overrides: dict[str, object] = {"node-name": NODE, "advertise-address": ADDRESS, **case.overrides}
    host = HostFacts(hostname=lambda: "not-this-one", default_ipv4=lambda: "192.0.2.99")
    return load_config(path, overrides, host=host)


def render_case(case: Case, tmp_dir: Path) -> dict[str, Manifest]:
    cfg = load_case(case, tmp_dir)
    view = HostView(dir_exists=lambda p: p in case.host_dirs, proxy_env=case.proxy_env)
    return {c: render(c, cfg, view) for c in components_for(cfg)}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Manifest]]:
    tmp_dir = tmp_path_factory.mktemp("configs")
    return {name: render_case(case, tmp_dir) for name, case in CASES.items()}


def container(manifest: Manifest) -> dict[str, Any]:
    containers = manifest.pod["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def flags(manifest: Manifest) -> list[str]:
    command: list[str] = container(manifest)["command"]
    assert command[0] == manifest.component
    return command[1:]


def flag_values(manifest: Manifest, name: str) -> list[str]:
    prefix = f"--{name}="
    return [f.removeprefix(prefix) for f in flags(manifest) if f.startswith(prefix)]


def volumes(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {v["name"]: v["hostPath"] for v in manifest.pod["spec"]["volumes"]}


def mounts(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container(manifest)["volumeMounts"]}


# ---- the golden files ----


@pytest.mark.parametrize(
    ("case", "component"),
    [
        (name, component)
        for name, case in CASES.items()
        for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
        if not (name == "external-etcd" and component == "etcd")
    ],
)
def test_rendered_manifest_matches_golden_file(
    rendered: dict[str, dict[str, Manifest]], case: str, component: str
) -> None:
    manifest = rendered[case][component]
    golden = GOLDEN / case / f"{component}.yaml"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(manifest.text)
    assert golden.exists(), f"{golden} is missing; run with UPDATE_GOLDEN=1 to create it"
    assert manifest.text == golden.read_text()


def test_golden_directory_holds_exactly_the_rendered_manifests(
    rendered: dict[str, dict[str, Manifest]],
) -> None:
    on_disk = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*.yaml"))
    expected = sorted(f"{case}/{c}.yaml" for case, manifests in rendered.items() for c in manifests)
    assert on_disk == expected


# ---- key facts, asserted outright so a wrong golden file cannot hide them ----


def test_default_flag_counts_match_kubeadm(rendered: dict[str, dict[str, Manifest]]) -> None:
    default = rendered["default"]
    counts = {c: len(flags(m)) for c, m in default.items()}
    assert counts == {"etcd": 19, "kube-apiserver": 27, "kube-controller-manager": 14, "kube-scheduler": 5}


def test_every_command_is_sorted_by_flag_name_then_value(rendered: dict[str, dict[str, Manifest]]) -> None:
    for case, manifests in rendered.items():
        for component, manifest in manifests.items():
            pairs = [tuple(f.removeprefix("--").split("=", 1)) for f in flags(manifest)]
            assert pairs == sorted(pairs), (case, component)


def test_default_apiserver_flags_are_kubeadms(rendered: dict[str, dict[str, Manifest]]) -> None:
    pki = "/etc/kubernetes/pki"
    expected = [
        f"--advertise-address={ADDRESS}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki}/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={pki}/etcd/ca.crt",
        f"--etcd-certfile={pki}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={pki}/apiserver-etcd-client.key",
        "--etcd-servers=https://127.0.0.1:2379",
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={pki}/front-proxy-client.crt",
        f"--proxy-client-key-file={pki}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        "--secure-port=6443",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki}/sa.pub",
        f"--service-account-signing-key-file={pki}/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
    ]
    assert flags(rendered["default"]["kube-apiserver"]) == expected
    assert not flag_values(rendered["default"]["kube-apiserver"], "bind-address")


def test_default_etcd_uses_etcd_36_flags_and_ports(rendered: dict[str, dict[str, Manifest]]) -> None:
    etcd = rendered["default"]["etcd"]
    assert flag_values(etcd, "feature-gates") == ["InitialCorruptCheck=true"]
    assert flag_values(etcd, "watch-progress-notify-interval") == ["5s"]
    assert not [f for f in flags(etcd) if f.startswith("--experimental-")]
    assert flag_values(etcd, "listen-client-urls") == [f"https://127.0.0.1:2379,https://{ADDRESS}:2379"]
    assert flag_values(etcd, "initial-cluster") == [f"{NODE}=https://{ADDRESS}:2380"]
    assert container(etcd)["image"] == "registry.k8s.io/etcd:3.6.4-0"


def test_common_pod_shape_is_kubeadms_for_every_case(rendered: dict[str, dict[str, Manifest]]) -> None:
    for case, manifests in rendered.items():
        for component, manifest in manifests.items():
            pod = manifest.pod
            where = (case, component)
            assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod", where
            assert pod["metadata"]["name"] == component, where
            assert pod["metadata"]["namespace"] == "kube-system", where
            assert pod["metadata"]["labels"] == {"component": component, "tier": "control-plane"}, where
            spec = pod["spec"]
            assert spec["hostNetwork"] is True, where
            assert spec["priority"] == 2000001000, where
            assert spec["priorityClassName"] == "system-node-critical", where
            assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}, where
            c = container(manifest)
            assert c["name"] == component, where
            assert c["imagePullPolicy"] == "IfNotPresent", where
            assert set(c["resources"]) == {"requests"}, where
            assert [v["name"] for v in spec["volumes"]] == sorted(v["name"] for v in spec["volumes"]), where
            names = [m["name"] for m in c["volumeMounts"]]
            assert names == sorted(names) and set(names) == set(volumes(manifest)), where
            env = [e["name"] for e in c.get("env", [])]
            assert env == sorted(env), where


def test_resource_requests_are_kubeadms(rendered: dict[str, dict[str, Manifest]]) -> None:
    requests = {c: container(m)["resources"]["requests"] for c, m in rendered["default"].items()}
    assert requests == {
        "etcd": {"cpu": "100m", "memory": "100Mi"},
        "kube-apiserver": {"cpu": "250m"},
        "kube-controller-manager": {"cpu": "200m"},
        "kube-scheduler": {"cpu": "100m"},
    }


def probe_summary(manifest: Manifest) -> dict[str, tuple[str, str, object, str]]:
    c = container(manifest)
    out = {}
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        if kind in c:
            get = c[kind]["httpGet"]
            out[kind] = (get.get("host", ""), get["path"], get["port"], get["scheme"])
    return out


def test_v134_probes_use_the_named_probe_port(rendered: dict[str, dict[str, Manifest]]) -> None:
    default = rendered["default"]
    ports = {c: container(m)["ports"] for c, m in default.items()}
    assert ports == {
        c: [{"containerPort": p, "name": "probe-port", "protocol": "TCP"}]
        for c, p in (
            ("etcd", 2381),
            ("kube-apiserver", 6443),
            ("kube-controller-manager", 10257),
            ("kube-scheduler", 10259),
        )
    }
    summaries = {c: probe_summary(m) for c, m in default.items()}
    assert summaries == {
        "etcd": {
            "livenessProbe": ("127.0.0.1", "/livez", "probe-port", "HTTP"),
            "readinessProbe": ("127.0.0.1", "/readyz", "probe-port", "HTTP"),
            "startupProbe": ("127.0.0.1", "/readyz", "probe-port", "HTTP"),
        },
        "kube-apiserver": {
            "livenessProbe": (ADDRESS, "/livez", "probe-port", "HTTPS"),
            "readinessProbe": (ADDRESS, "/readyz", "probe-port", "HTTPS"),
            "startupProbe": (ADDRESS, "/livez", "probe-port", "HTTPS"),
        },
        "kube-controller-manager": {
            "livenessProbe": ("127.0.0.1", "/healthz", "probe-port", "HTTPS"),
            "startupProbe": ("127.0.0.1", "/healthz", "probe-port", "HTTPS"),
        },
        "kube-scheduler": {
            "livenessProbe": ("127.0.0.1", "/livez", "probe-port", "HTTPS"),
            "readinessProbe": ("127.0.0.1", "/readyz", "probe-port", "HTTPS"),
            "startupProbe": ("127.0.0.1", "/livez", "probe-port", "HTTPS"),
        },
    }


def test_probe_timings_are_kubeadms(rendered: dict[str, dict[str, Manifest]]) -> None:
    for case, manifests in rendered.items():
        threshold = 12 if case == "customised" else 24  # ceil(controlPlaneComponentHealthCheck / 10s)
        for component, manifest in manifests.items():
            c = container(manifest)
            timing = {
                kind: {k: v for k, v in c[kind].items() if k != "httpGet"}
                for kind in ("livenessProbe", "readinessProbe", "startupProbe")
                if kind in c
            }
            assert timing["livenessProbe"] == {
                "initialDelaySeconds": 10,
                "timeoutSeconds": 15,
                "failureThreshold": 8,
                "periodSeconds": 10,
            }, (case, component)
            assert timing["startupProbe"] == {
                "initialDelaySeconds": 10,
                "timeoutSeconds": 15,
                "failureThreshold": threshold,
                "periodSeconds": 10,
            }, (case, component)
            if "readinessProbe" in timing:
                assert timing["readinessProbe"] == {
                    "timeoutSeconds": 15,
                    "failureThreshold": 3,
                    "periodSeconds": 1,
                }, (case, component)


def test_v131_has_numeric_probe_ports_healthz_scheduler_and_etcd_35_flags(
    rendered: dict[str, dict[str, Manifest]],
) -> None:
    v131 = rendered["v1.31"]
    for component, manifest in v131.items():
        assert "ports" not in container(manifest), component
    assert probe_summary(v131["kube-scheduler"]) == {
        "livenessProbe": ("127.0.0.1", "/healthz", 10259, "HTTPS"),
        "startupProbe": ("127.0.0.1", "/healthz", 10259, "HTTPS"),
    }
    assert probe_summary(v131["kube-apiserver"])["livenessProbe"] == (ADDRESS, "/livez", 6443, "HTTPS")
    assert probe_summary(v131["etcd"])["readinessProbe"] == ("127.0.0.1", "/readyz", 2381, "HTTP")
    etcd = v131["etcd"]
    assert flag_values(etcd, "experimental-initial-corrupt-check") == ["true"]
    assert flag_values(etcd, "experimental-watch-progress-notify-interval") == ["5s"]
    assert not flag_values(etcd, "feature-gates")
    assert not flag_values(etcd, "watch-progress-notify-interval")
    assert len(flags(etcd)) == 19
    assert container(etcd)["image"] == "registry.k8s.io/etcd:3.5.15-0"
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert container(v131[component])["image"] == f"registry.k8s.io/{component}:v1.31.4"


def test_annotations_are_kubeadms(rendered: dict[str, dict[str, Manifest]]) -> None:
    def annotations(case: str, component: str) -> dict[str, str]:
        result: dict[str, str] = rendered[case][component].pod["metadata"].get("annotations", {})
        return result

    assert annotations("default", "kube-apiserver") == {
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "10.0.0.1:6443"
    }
    assert annotations("default", "etcd") == {
        "kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://10.0.0.1:2379"
    }
    assert annotations("default", "kube-controller-manager") == {}
    assert annotations("default", "kube-scheduler") == {}
    assert annotations("ipv6", "kube-apiserver") == {
        "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "[fd00::10]:6443"
    }
    assert annotations("ipv6", "etcd") == {
        "kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://[fd00::10]:2379"
    }


def test_default_volumes_are_kubeadms(rendered: dict[str, dict[str, Manifest]]) -> None:
    default = rendered["default"]
    table = {
        c: {
            name: (hp["path"], hp["type"], mounts(m)[name].get("readOnly", False))
            for name, hp in volumes(m).items()
        }
        for c, m in default.items()
    }
    assert table == {
        "etcd": {
            "etcd-certs": ("/etc/kubernetes/pki/etcd", "DirectoryOrCreate", False),
            "etcd-data": ("/var/lib/etcd", "DirectoryOrCreate", False),
        },
        "kube-apiserver": {
            "ca-certs": ("/etc/ssl/certs", "DirectoryOrCreate", True),
            "k8s-certs": ("/etc/kubernetes/pki", "DirectoryOrCreate", True),
        },
        "kube-controller-manager": {
            "ca-certs": ("/etc/ssl/certs", "DirectoryOrCreate", True),
            "flexvolume-dir": (
                "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
                "DirectoryOrCreate",
                False,
            ),
            "k8s-certs": ("/etc/kubernetes/pki", "DirectoryOrCreate", True),
            "kubeconfig": ("/etc/kubernetes/controller-manager.conf", "FileOrCreate", True),
        },
        "kube-scheduler": {
            "kubeconfig": ("/etc/kubernetes/scheduler.conf", "FileOrCreate", True),
        },
    }
    for manifest in default.values():
        for name, mount in mounts(manifest).items():
            assert mount["mountPath"] == volumes(manifest)[name]["path"]


def test_customised_extra_args_replace_defaults_and_keep_repeats(
    rendered: dict[str, dict[str, Manifest]],
) -> None:
    custom = rendered["customised"]
    apiserver = custom["kube-apiserver"]
    assert flag_values(apiserver, "service-account-issuer") == [
        "https://issuer.example.com",
        "https://kubernetes.default.svc.corp.local",
    ]
    assert flag_values(apiserver, "enable-admission-plugins") == ["NodeRestriction,PodSecurity"]
    assert flag_values(apiserver, "audit-log-path") == ["/var/log/kubernetes/audit/audit.log"]
    assert flag_values(apiserver, "secure-port") == ["8443"]
    assert flag_values(apiserver, "service-cluster-ip-range") == ["10.112.0.0/16"]
    assert len(flags(apiserver)) == 29  # 27 defaults + a second issuer + audit-log-path
    kcm = custom["kube-controller-manager"]
    assert flag_values(kcm, "allocate-node-cidrs") == ["true"]
    assert flag_values(kcm, "cluster-cidr") == ["10.244.0.0/16"]
    assert flag_values(kcm, "service-cluster-ip-range") == ["10.112.0.0/16"]
    assert flag_values(kcm, "bind-address") == [ADDRESS]
    assert flag_values(kcm, "cluster-name") == ["prod"]
    assert len(flags(kcm)) == 18  # 14 + 3 podSubnet flags + node-cidr-mask-size
    scheduler = custom["kube-scheduler"]
    assert flag_values(scheduler, "leader-elect") == ["false"]
    assert len(flags(scheduler)) == 6
    etcd = custom["etcd"]
    assert flag_values(etcd, "snapshot-count") == ["5000"]
    assert flag_values(etcd, "data-dir") == ["/data/etcd"]
    # The image tag picks the etcd 3.5 flag set even on v1.34.
    assert flag_values(etcd, "experimental-initial-corrupt-check") == ["true"]
    assert not flag_values(etcd, "feature-gates")


def test_customised_probes_follow_bind_address_port_and_metrics_url(
    rendered: dict[str, dict[str, Manifest]],
) -> None:
    custom = rendered["customised"]
    assert container(custom["kube-apiserver"])["ports"][0]["containerPort"] == 8443
    assert probe_summary(custom["kube-controller-manager"])["livenessProbe"] == (
        ADDRESS,
        "/healthz",
        "probe-port",
        "HTTPS",
    )
    assert probe_summary(custom["etcd"])["livenessProbe"] == ("127.0.0.1", "/livez", "probe-port", "HTTP")
    annotations = custom["kube-apiserver"].pod["metadata"]["annotations"]
    assert annotations == {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": "10.0.0.1:8443"}


def test_customised_images_volumes_and_env(rendered: dict[str, dict[str, Manifest]]) -> None:
    custom = rendered["customised"]
    images = {c: container(m)["image"] for c, m in custom.items()}
    assert images == {
        "etcd": "registry.example.com/k8s/etcd:3.5.21-0",
        "kube-apiserver": "registry.example.com/k8s/kube-apiserver:v1.34.2",
        "kube-controller-manager": "registry.example.com/k8s/kube-controller-manager:v1.34.2",
        "kube-scheduler": "registry.example.com/k8s/kube-scheduler:v1.34.2",
    }
    apiserver = custom["kube-apiserver"]
    assert volumes(apiserver)["audit-log"] == {
        "path": "/var/log/kubernetes/audit",
        "type": "DirectoryOrCreate",
    }
    assert "readOnly" not in mounts(apiserver)["audit-log"]
    # Optional CA directories are mounted only when the host has them.
    assert set(volumes(apiserver)) == {
        "audit-log",
        "ca-certs",
        "etc-ca-certificates",
        "k8s-certs",
        "usr-share-ca-certificates",
    }
    kcm = custom["kube-controller-manager"]
    assert volumes(kcm)["ca-certs"] == {"path": "/etc/custom-ca", "type": "Directory"}
    assert mounts(kcm)["ca-certs"] == {"mountPath": "/etc/ssl/certs", "name": "ca-certs", "readOnly": True}
    assert volumes(custom["kube-scheduler"])["scheduler-config"] == {
        "path": "/etc/kubernetes/scheduler-config.yaml",
        "type": "File",
    }
    assert volumes(custom["etcd"])["etcd-data"] == {"path": "/data/etcd", "type": "DirectoryOrCreate"}
    # Proxy variables merged with extraEnvs (extraEnvs win), sorted; etcd gets extraEnvs only.
    assert container(apiserver)["env"] == [
        {"name": "GOMAXPROCS", "value": "4"},
        {"name": "HTTPS_PROXY", "value": "http://proxy.corp.local:3128"},
        {"name": "NO_PROXY", "value": "10.0.0.0/8,.corp.local"},
    ]
    assert container(kcm)["env"] == [
        {"name": "HTTPS_PROXY", "value": "http://proxy.corp.local:3128"},
        {"name": "NO_PROXY", "value": "localhost"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    assert container(custom["etcd"])["env"] == [{"name": "ETCD_LOG_LEVEL", "value": "warn"}]


def test_ipv6_uses_bracketed_urls_and_ipv6_loopback(rendered: dict[str, dict[str, Manifest]]) -> None:
    ipv6 = rendered["ipv6"]
    apiserver = ipv6["kube-apiserver"]
    assert flag_values(apiserver, "advertise-address") == ["fd00::10"]
    assert flag_values(apiserver, "etcd-servers") == ["https://[::1]:2379"]
    assert flag_values(apiserver, "service-cluster-ip-range") == ["fd00:10::/108"]
    assert probe_summary(apiserver)["livenessProbe"][0] == "fd00::10"
    etcd = ipv6["etcd"]
    assert flag_values(etcd, "advertise-client-urls") == ["https://[fd00::10]:2379"]
    assert flag_values(etcd, "listen-client-urls") == ["https://[::1]:2379,https://[fd00::10]:2379"]
    assert flag_values(etcd, "listen-metrics-urls") == ["http://[::1]:2381"]
    assert flag_values(etcd, "listen-peer-urls") == ["https://[fd00::10]:2380"]
    assert flag_values(etcd, "initial-cluster") == [f"{NODE}=https://[fd00::10]:2380"]
    assert {p[0] for p in probe_summary(etcd).values()} == {"::1"}


def test_external_etcd_has_no_etcd_pod_and_mounts_outside_cert_dirs(
    rendered: dict[str, dict[str, Manifest]],
) -> None:
    external = rendered["external-etcd"]
    assert sorted(external) == ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    apiserver = external["kube-apiserver"]
    assert flag_values(apiserver, "etcd-servers") == ["https://10.0.0.20:2379,https://10.0.0.21:2379"]
    assert flag_values(apiserver, "etcd-cafile") == ["/etc/etcd/pki/ca.crt"]
    assert flag_values(apiserver, "etcd-certfile") == ["/etc/etcd/pki/apiserver-etcd-client.crt"]
    assert flag_values(apiserver, "etcd-keyfile") == [
        "/etc/kubernetes/pki/etcd-client/apiserver-etcd-client.key"
    ]
    assert len(flags(apiserver)) == 27
    # /etc/etcd/pki needs its own volume; the key's dir is already under the k8s-certs mount.
    etcd_volumes = {n: v for n, v in volumes(apiserver).items() if n.startswith("etcd-certs")}
    assert etcd_volumes == {"etcd-certs-0": {"path": "/etc/etcd/pki", "type": "DirectoryOrCreate"}}
    assert mounts(apiserver)["etcd-certs-0"] == {
        "mountPath": "/etc/etcd/pki",
        "name": "etcd-certs-0",
        "readOnly": True,
    }


def test_config_file_for_customised_case_is_free_of_warnings(tmp_path: Path) -> None:
    cfg = load_case(CASES["customised"], tmp_path)
    assert cfg.warnings == [], textwrap.shorten(str(cfg.warnings), 300)
