"""Every rendered manifest is a valid core/v1 Pod for its Kubernetes version (strict: no unknown fields)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bootstrap.components.render import Manifest
from tests.test_manifests_golden import CASES, render_case


def schema_version(kubernetes_version: str) -> str:
    """``v1.34.2`` -> ``1.34.0``: the schemas are per minor release."""
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    return f"{major}.{minor}.0"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Manifest]]:
    tmp_dir = tmp_path_factory.mktemp("configs")
    return {name: render_case(case, tmp_dir) for name, case in CASES.items()}


def versions(rendered: dict[str, dict[str, Manifest]]) -> dict[str, str]:
    """The Kubernetes version each case renders for, from its apiserver image tag."""
    out = {}
    for case, manifests in rendered.items():
        image: str = manifests["kube-apiserver"].pod["spec"]["containers"][0]["image"]
        out[case] = schema_version(image.rsplit(":", 1)[1])
    return out


def test_cases_cover_both_schema_versions(rendered: dict[str, dict[str, Manifest]]) -> None:
    assert versions(rendered) == {
        "default": "1.34.0",
        "v1.31": "1.31.0",
        "customised": "1.34.0",
        "ipv6": "1.34.0",
        "external-etcd": "1.34.0",
    }


@pytest.mark.parametrize("case", list(CASES))
def test_every_manifest_validates_strictly_against_its_kubernetes_schema(
    rendered: dict[str, dict[str, Manifest]], case: str
) -> None:
    version = versions(rendered)[case]
    manifests = rendered[case]
    assert manifests, case
    for component, manifest in manifests.items():
        try:
            kubernetes_validate.validate(manifest.pod, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{case}/{component} is not a valid Pod for {version}: {exc}")


def test_strict_validation_rejects_a_misspelt_field(rendered: dict[str, dict[str, Manifest]]) -> None:
    pod: dict[str, Any] = copy.deepcopy(rendered["default"]["kube-apiserver"].pod)
    pod["spec"]["containers"][0]["imagePullPolicyy"] = pod["spec"]["containers"][0].pop("imagePullPolicy")
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolicyy"):
        kubernetes_validate.validate(pod, "1.34.0", strict=True)
    # The same document without the typo passes: the failure is the misspelling, nothing else.
    pod["spec"]["containers"][0]["imagePullPolicy"] = pod["spec"]["containers"][0].pop("imagePullPolicyy")
    kubernetes_validate.validate(pod, "1.34.0", strict=True)


def test_validation_rejects_a_wrongly_typed_value(rendered: dict[str, dict[str, Manifest]]) -> None:
    pod: dict[str, Any] = copy.deepcopy(rendered["default"]["etcd"].pod)
    pod["spec"]["priority"] = "2000001000"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, "1.34.0", strict=True)


def test_golden_files_are_valid_pods_too() -> None:
    # A golden file is what a reviewer reads; it must itself be a valid Pod.

    golden = Path(__file__).parent / "golden"
    files = sorted(golden.rglob("*.yaml"))
    assert len(files) == 19
    for path in files:
        version = "1.31.0" if path.parent.name == "v1.31" else "1.34.0"
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), version, strict=True)
