"""ensure_cert / ensure_sa: idempotent re-runs, refusal of unusable files, external CA, key types."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pki_helpers import NOW, contents, generate_all, make_settings, snapshot

from bootstrap.config.keyalgorithms import ENCRYPTION_ALGORITHMS
from bootstrap.errors import PkiError
from bootstrap.pki import (
    CERT_NAMES,
    KeySource,
    ensure_cert,
    ensure_sa,
    issue_client_cert,
    load_ca,
    verify_client_pair,
)

ECDSA = make_settings(encryption_algorithm="ECDSA-P256")  # fast keys for tests that are not about RSA


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete ECDSA PKI generated once; tests copy it."""
    pki_dir = tmp_path_factory.mktemp("pristine") / "pki"
    generate_all(pki_dir, ECDSA)
    return pki_dir


@pytest.fixture
def pki_dir(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "pki"
    shutil.copytree(pristine, target)
    return target


def ensure(name: str, pki_dir: Path, settings: object = ECDSA) -> str:
    assert isinstance(settings, type(ECDSA))
    with KeySource(settings.encryption_algorithm) as keys:
        outcome = ensure_cert(name, settings, pki_dir, keys)
    return outcome.message


def test_first_run_generates_every_cert_with_kubeadm_messages(tmp_path: Path) -> None:
    outcomes = generate_all(tmp_path, make_settings())
    assert all(o.changed for o in outcomes)
    first_lines = [o.message.splitlines()[0] for o in outcomes]
    assert first_lines[:3] == [
        'Generating "ca" certificate and key',
        'Generating "apiserver" certificate and key',
        'Generating "apiserver-kubelet-client" certificate and key',
    ]
    assert first_lines[-1] == 'Generating "sa" key and public key'
    assert outcomes[0].files == [tmp_path / "ca.key", tmp_path / "ca.crt"]  # key written before cert


def test_rerun_keeps_every_file_byte_identical_with_mtimes_and_reports_unchanged(tmp_path: Path) -> None:
    settings = make_settings()
    generate_all(tmp_path, settings)
    before = snapshot(tmp_path)
    outcomes = generate_all(tmp_path, settings)
    assert snapshot(tmp_path) == before
    assert [o.changed for o in outcomes] == [False] * (len(CERT_NAMES) + 1)
    assert all(o.files == [] for o in outcomes)
    messages = [o.message for o in outcomes]
    assert messages[0] == 'Using existing "ca" certificate authority'
    assert messages[1] == 'Using existing "apiserver" certificate and key'
    assert messages[-1] == 'Using the existing "sa" key'


def test_cert_signed_by_another_ca_is_refused_and_left_alone(pki_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_all(other, ECDSA, names=("ca", "apiserver"))
    for suffix in ("crt", "key"):
        shutil.copy(other / f"apiserver.{suffix}", pki_dir / f"apiserver.{suffix}")
    before = contents(pki_dir)
    with pytest.raises(PkiError) as err:
        ensure("apiserver", pki_dir)
    message = err.value.message
    assert message.startswith(f"{pki_dir / 'apiserver.crt'}: ")
    assert "signed by another CA" in message
    assert 'bootstrap certs renew apiserver"' in message
    assert contents(pki_dir) == before


def test_key_not_matching_its_cert_is_refused_and_left_alone(pki_dir: Path) -> None:
    shutil.copy(pki_dir / "front-proxy-client.key", pki_dir / "apiserver-kubelet-client.key")
    before = contents(pki_dir)
    with pytest.raises(PkiError) as err:
        ensure("apiserver-kubelet-client", pki_dir)
    assert str(pki_dir / "apiserver-kubelet-client.crt") in err.value.message
    assert "apiserver-kubelet-client.key does not match the certificate's public key" in err.value.message
    assert contents(pki_dir) == before


def test_cert_missing_a_newly_required_san_is_refused_naming_the_sans(pki_dir: Path) -> None:
    settings = make_settings(
        encryption_algorithm="ECDSA-P256", apiserver_cert_sans=("10.0.0.9", "foo.example")
    )
    before = contents(pki_dir)
    with pytest.raises(PkiError) as err:
        ensure("apiserver", pki_dir, settings)
    assert err.value.message == (
        f"{pki_dir / 'apiserver.crt'}: missing SANs [DNS:foo.example, IP:10.0.0.9] "
        "required by the configuration; "
        'delete apiserver.crt and apiserver.key and re-run "bootstrap phase certs apiserver"'
    )
    assert contents(pki_dir) == before


def test_etcd_server_missing_extra_san_is_refused(pki_dir: Path) -> None:
    settings = make_settings(encryption_algorithm="ECDSA-P256", etcd_server_cert_sans=("etcd.example",))
    with pytest.raises(PkiError, match=r"etcd/server\.crt: missing SANs \[DNS:etcd\.example\]"):
        ensure("etcd-server", pki_dir, settings)
    assert ensure("etcd-peer", pki_dir, settings) == 'Using existing "etcd/peer" certificate and key'


def test_leaf_cert_without_its_key_is_refused(pki_dir: Path) -> None:
    (pki_dir / "front-proxy-client.key").unlink()
    before = contents(pki_dir)
    with pytest.raises(
        PkiError, match=r"front-proxy-client\.crt: its private key .*front-proxy-client\.key is missing"
    ):
        ensure("front-proxy-client", pki_dir)
    assert contents(pki_dir) == before


def test_orphan_key_left_by_interrupted_run_is_replaced_and_run_converges(pki_dir: Path) -> None:
    (pki_dir / "apiserver.crt").unlink()  # crash between writing the key and the cert
    old_key = (pki_dir / "apiserver.key").read_bytes()
    message = ensure("apiserver", pki_dir)
    assert message.splitlines()[0] == 'Generating "apiserver" certificate and key'
    assert "a key without its certificate" in message
    assert (pki_dir / "apiserver.key").read_bytes() != old_key
    assert ensure("apiserver", pki_dir) == 'Using existing "apiserver" certificate and key'


def test_orphan_ca_key_is_replaced(tmp_path: Path) -> None:
    generate_all(tmp_path, ECDSA, names=("ca",))
    (tmp_path / "ca.crt").unlink()
    assert "a key without its certificate" in ensure("ca", tmp_path)
    assert load_ca(tmp_path).key is not None


def test_leaf_whose_ca_is_missing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        PkiError, match=r'ca\.crt: the "ca" CA certificate is missing; run "bootstrap phase certs ca"'
    ):
        ensure("apiserver", tmp_path)
    assert not (tmp_path / "apiserver.key").exists()


def test_expired_leaf_is_refused_with_renew_hint(tmp_path: Path) -> None:
    generate_all(tmp_path, ECDSA, names=("ca", "apiserver"))
    later = make_settings(
        encryption_algorithm="ECDSA-P256", now=NOW + ECDSA.cert_validity + ECDSA.cert_validity
    )
    with pytest.raises(PkiError, match=r'apiserver\.crt: expired on .*run "bootstrap certs renew apiserver"'):
        ensure("apiserver", tmp_path, later)


def test_non_ca_cert_in_place_of_a_ca_is_refused(pki_dir: Path) -> None:
    shutil.copy(pki_dir / "apiserver.crt", pki_dir / "front-proxy-ca.crt")
    shutil.copy(pki_dir / "apiserver.key", pki_dir / "front-proxy-ca.key")
    with pytest.raises(PkiError, match=r"front-proxy-ca\.crt: not a CA certificate"):
        ensure("front-proxy-ca", pki_dir)


def test_external_ca_reuses_provided_leaves_and_reports_it(pki_dir: Path) -> None:
    (pki_dir / "ca.key").unlink()
    assert load_ca(pki_dir).key is None
    assert "external CA: ca.key is absent" in ensure("ca", pki_dir)
    before = snapshot(pki_dir)
    assert ensure("apiserver", pki_dir) == 'Using existing "apiserver" certificate and key'
    assert (
        ensure("apiserver-kubelet-client", pki_dir)
        == 'Using existing "apiserver-kubelet-client" certificate and key'
    )
    assert snapshot(pki_dir) == before


def test_external_ca_missing_leaf_is_an_error_and_nothing_is_generated(pki_dir: Path) -> None:
    (pki_dir / "ca.key").unlink()
    (pki_dir / "apiserver.crt").unlink()
    (pki_dir / "apiserver.key").unlink()
    with pytest.raises(PkiError) as err:
        ensure("apiserver", pki_dir)
    assert "apiserver.crt: missing" in err.value.message
    assert "ca.key" in err.value.message
    assert "external CA" in err.value.message
    assert not (pki_dir / "apiserver.crt").exists()
    assert not (pki_dir / "apiserver.key").exists()


def test_external_ca_is_per_authority(pki_dir: Path) -> None:
    (pki_dir / "etcd" / "ca.key").unlink()
    (pki_dir / "front-proxy-client.crt").unlink()
    (pki_dir / "front-proxy-client.key").unlink()
    (pki_dir / "etcd" / "peer.crt").unlink()
    assert ensure("front-proxy-client", pki_dir).startswith('Generating "front-proxy-client"')
    with pytest.raises(PkiError, match=r'"etcd-ca" CA key .*etcd/ca\.key is absent'):
        ensure("etcd-peer", pki_dir)


def test_external_etcd_skips_etcd_certs_without_writing(tmp_path: Path) -> None:
    settings = make_settings(encryption_algorithm="ECDSA-P256", external_etcd=True)
    outcomes = generate_all(tmp_path, settings)
    skipped = {o.message for o in outcomes if not o.changed}
    assert skipped == {
        f'External etcd mode: skipping "{name}" certificate'
        for name in (
            "etcd-ca",
            "etcd-server",
            "etcd-peer",
            "etcd-healthcheck-client",
            "apiserver-etcd-client",
        )
    }
    assert not (tmp_path / "etcd").exists()
    assert not (tmp_path / "apiserver-etcd-client.crt").exists()


def test_unknown_cert_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match=r"unknown certificate 'apiserver-x'; valid: ca, apiserver, "):
        ensure("apiserver-x", tmp_path)


@pytest.mark.parametrize("algorithm", ENCRYPTION_ALGORITHMS)
def test_encryption_algorithm_sets_key_type_and_size(tmp_path: Path, algorithm: str) -> None:
    settings = make_settings(encryption_algorithm=algorithm)
    generate_all(tmp_path, settings, names=("ca",))  # one cert (plus sa): RSA-4096 is slow
    for path in (tmp_path / "ca.crt",):
        key = x509.load_pem_x509_certificate(path.read_bytes()).public_key()
        kind, _, size = algorithm.partition("-")
        if kind == "RSA":
            assert isinstance(key, rsa.RSAPublicKey)
            assert key.key_size == int(size)
        else:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            assert key.curve.name == {"P256": "secp256r1", "P384": "secp384r1"}[size]
    sa = (tmp_path / "sa.key").read_text()
    assert sa.startswith(
        "-----BEGIN RSA PRIVATE KEY-----" if algorithm.startswith("RSA") else "-----BEGIN EC"
    )


def test_unsupported_encryption_algorithm_is_an_error() -> None:
    with pytest.raises(PkiError, match=r"unsupported encryption algorithm 'DSA-1024'; valid: RSA-2048"):
        KeySource("DSA-1024")


@pytest.fixture
def new_children() -> Callable[[], list[multiprocessing.process.BaseProcess]]:
    """The child processes of this test process started since the test began (a pytest worker runs
    other files' tests first; what they left running is not this test's pool)."""
    before = set(multiprocessing.active_children())
    return lambda: [p for p in multiprocessing.active_children() if p not in before]


def test_key_source_prefetch_returns_distinct_valid_keys_and_shuts_its_pool_down(
    new_children: Callable[[], list[multiprocessing.process.BaseProcess]],
) -> None:
    with KeySource("RSA-2048") as keys:
        keys.prefetch(4)
        assert keys.pending == 4
        assert new_children()
        taken = [keys.take() for _ in range(5)]  # the fifth is generated inline
        assert keys.pending == 0
    rsa_keys = [k for k in taken if isinstance(k, rsa.RSAPrivateKey) and k.key_size == 2048]
    assert len(rsa_keys) == 5
    assert len({k.private_numbers().p for k in rsa_keys}) == 5
    assert new_children() == []


def test_key_source_shuts_its_pool_down_when_the_run_fails(
    new_children: Callable[[], list[multiprocessing.process.BaseProcess]],
) -> None:
    with pytest.raises(RuntimeError), KeySource("RSA-2048") as keys:
        keys.prefetch(3)
        raise RuntimeError("phase failed")
    assert keys.pending == 0
    assert new_children() == []


def test_key_source_tops_up_a_running_pool_by_a_single_key() -> None:
    from bootstrap.pki.keys import public_key_der

    with KeySource("RSA-2048") as keys:
        keys.prefetch(2)
        keys.prefetch(1)
        assert keys.pending == 3
        assert len({public_key_der(keys.take()) for _ in range(3)}) == 3
        assert keys.pending == 0


def test_key_source_starts_no_pool_for_one_key_or_for_ecdsa(
    new_children: Callable[[], list[multiprocessing.process.BaseProcess]],
) -> None:
    for algorithm, count in (("RSA-2048", 1), ("ECDSA-P256", 8)):
        with KeySource(algorithm) as keys:
            keys.prefetch(count)
            assert keys.pending == 0
            assert new_children() == []
            assert keys.take() is not None


def test_run_keys_started_ahead_serve_the_run_or_give_way_to_the_configured_algorithm(
    rootfs: Path, new_children: Callable[[], list[multiprocessing.process.BaseProcess]]
) -> None:
    import dataclasses

    from bootstrap.output import Reporter
    from bootstrap.workflow.rundata import RunData, RunOptions

    for configured, reused in (("RSA-2048", True), ("ECDSA-P256", False)):
        rd = RunData(RunOptions(overrides={"node-name": "cp1"}, rootfs=rootfs), Reporter())
        rd.start_keys_ahead()
        early = rd.keys  # the source started before the config was read (reading it now keeps it)
        assert early.pending == (os.cpu_count() or 1)
        # What the config would say; without a config file only the default can come out, but a source
        # for another algorithm must never hand out its keys.
        rd.__dict__["pki_settings"] = dataclasses.replace(rd.pki_settings, encryption_algorithm=configured)
        try:
            assert (rd.keys is early) is reused
            assert rd.keys.algorithm == configured
            assert isinstance(rd.keys.take(), rsa.RSAPrivateKey if reused else ec.EllipticCurvePrivateKey)
        finally:
            rd.close()
        assert new_children() == []


def test_existing_sa_key_is_reused_and_missing_sa_pub_rederived(pki_dir: Path) -> None:
    key_before = (pki_dir / "sa.key").read_bytes()
    pub_before = (pki_dir / "sa.pub").read_bytes()
    (pki_dir / "sa.pub").unlink()
    with KeySource("ECDSA-P256") as keys:
        outcome = ensure_sa(ECDSA, pki_dir, keys)
        assert outcome.changed
        assert outcome.message.startswith('Using the existing "sa" key')
        assert (pki_dir / "sa.key").read_bytes() == key_before
        assert (pki_dir / "sa.pub").read_bytes() == pub_before
        assert (pki_dir / "sa.pub").stat().st_mode & 0o7777 == 0o600
        assert ensure_sa(ECDSA, pki_dir, keys).changed is False


def test_sa_pub_not_matching_sa_key_is_refused(pki_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_all(other, ECDSA, names=())
    shutil.copy(other / "sa.pub", pki_dir / "sa.pub")
    before = contents(pki_dir)
    with KeySource("ECDSA-P256") as keys, pytest.raises(PkiError, match=r"sa\.pub: does not match .*sa\.key"):
        ensure_sa(ECDSA, pki_dir, keys)
    assert contents(pki_dir) == before


def test_issued_client_pair_verifies_and_a_foreign_key_does_not(pki_dir: Path) -> None:
    ca = load_ca(pki_dir)
    with KeySource("ECDSA-P256") as keys:
        cert_pem, key_pem = issue_client_cert(ca, "kubernetes-admin", ["kubeadm:cluster-admins"], ECDSA, keys)
        _, other_key = issue_client_cert(ca, "kubernetes-admin", ["kubeadm:cluster-admins"], ECDSA, keys)
    ok = verify_client_pair(
        ca.cert, cert_pem, key_pem, common_name="kubernetes-admin", organizations=["kubeadm:cluster-admins"]
    )
    assert ok is None
    assert (
        verify_client_pair(ca.cert, cert_pem, other_key)
        == "the client key does not match the client certificate"
    )
    assert "CN is 'kubernetes-admin', expected 'x'" in str(
        verify_client_pair(ca.cert, cert_pem, key_pem, common_name="x")
    )
    assert verify_client_pair(ca.cert, cert_pem, key_pem, organizations=["system:masters", "x"]) == (
        "the client certificate's O is kubeadm:cluster-admins, expected system:masters, x"
    )
    etcd_ca = load_ca(pki_dir, "etcd-ca")
    assert "not by the cluster CA" in str(verify_client_pair(etcd_ca.cert, cert_pem, key_pem))


def test_issue_client_cert_refuses_an_external_ca(pki_dir: Path) -> None:
    (pki_dir / "ca.key").unlink()
    with (
        KeySource("ECDSA-P256") as keys,
        pytest.raises(PkiError, match=r'"ca" CA key is absent \(external CA mode\)'),
    ):
        issue_client_cert(load_ca(pki_dir), "kubernetes-admin", [], ECDSA, keys)
