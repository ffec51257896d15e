"""The small shared readers in config: host:port endpoints, Kubernetes versions, the kubeadm flag table."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bootstrap.components.serve import parse_listen
from bootstrap.config.hostport import split_host_port
from bootstrap.config.keyalgorithms import DEFAULT_ENCRYPTION_ALGORITHM, ENCRYPTION_ALGORITHMS
from bootstrap.config.kubeadm_flags import FLAG_FIELDS, KUBEADM_FLAGS
from bootstrap.config.kubeversion import major_minor, minor_of
from bootstrap.errors import PkiError, UsageError
from bootstrap.pki.kubeconfig_files import endpoints_for
from bootstrap.pki.specs import endpoint_host

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("cp.example", ("cp.example", None)),
        ("cp.example:7443", ("cp.example", "7443")),
        ("10.0.0.1:6443", ("10.0.0.1", "6443")),
        ("[fd00::1]:6443", ("fd00::1", "6443")),
        ("[fd00::1]", ("fd00::1", None)),
        ("fd00::1", ("fd00::1", None)),
    ],
)
def test_an_endpoint_splits_into_host_and_unparsed_port(
    endpoint: str, expected: tuple[str, str | None]
) -> None:
    assert split_host_port(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["[fd00::1", "[cp.example]:1", "[fd00::1]x", "cp]:1"])
def test_a_broken_bracket_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(endpoint)


def test_the_pki_and_the_kubeconfigs_split_endpoints_the_same_way() -> None:
    assert endpoint_host("[fd00::1]:7443") == "fd00::1"
    assert endpoint_host("cp.example") == "cp.example"
    with pytest.raises(PkiError, match=r"controlPlaneEndpoint '\[fd00::1': missing '\]'"):
        endpoint_host("[fd00::1")
    assert endpoints_for("10.0.0.5", 6443, "[fd00::1]:7443").cluster == "https://[fd00::1]:7443"
    assert endpoints_for("10.0.0.5", 6443, "cp.example").cluster == "https://cp.example:6443"
    assert endpoints_for("10.0.0.5", 6443, "").cluster == "https://10.0.0.5:6443"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:0", ("127.0.0.1", 0)), (":8080", ("127.0.0.1", 8080)), ("[::1]:80", ("::1", 80))],
)
def test_listen_takes_host_and_port(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.1:65536", "[::1]", "[::1:80", "host:x"])
def test_listen_without_a_usable_port_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="--listen"):
        parse_listen(value)


@pytest.mark.parametrize(
    ("version", "expected"), [("v1.34.2", (1, 34)), ("1.31.0", (1, 31)), ("v2.0.0-rc.1", (2, 0))]
)
def test_a_version_gives_its_major_and_minor(version: str, expected: tuple[int, int]) -> None:
    assert major_minor(version) == expected
    assert minor_of(version) == expected[1]


def test_every_spelling_of_a_kubeadm_flag_sets_the_same_field() -> None:
    for flag in KUBEADM_FLAGS:
        assert {FLAG_FIELDS[name] for name in flag.names} == {(flag.document, flag.field)}
    assert FLAG_FIELDS["advertise-address"] == ("InitConfiguration", "localAPIEndpoint.advertiseAddress")
    assert len(FLAG_FIELDS) == sum(len(flag.names) for flag in KUBEADM_FLAGS)


def test_the_ansible_role_offers_exactly_the_key_algorithms_the_config_accepts() -> None:
    specs = yaml.safe_load((ROOT / "ansible/roles/kube_bootstrap/meta/argument_specs.yml").read_text())
    option = specs["argument_specs"]["main"]["options"]["kube_bootstrap_encryption_algorithm"]
    assert option["choices"] == list(ENCRYPTION_ALGORITHMS)
    assert option["default"] == DEFAULT_ENCRYPTION_ALGORITHM
