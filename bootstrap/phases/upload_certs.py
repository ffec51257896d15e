"""Adapter for the ``upload-certs`` phase: the CAs and service-account key, encrypted, into
``kube-system/kubeadm-certs`` for control-plane nodes that join (only with ``--upload-certs``).

The certificate key comes from ``InitConfiguration.certificateKey`` (or ``--certificate-key``), else
a new random one. It is shown once, on stdout in text output: in the control-plane join command
when show-join-command prints one, otherwise at the end of the run. It never goes to a log line, a
phase message or a file; ``-o json`` carries it only as show-join-command's ``certificateKey``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

LABEL = "upload-certs"
# An after_group key no phase has as its label: the action runs when the whole run ends.
_END_OF_RUN = "upload-certs:end-of-run"


def _not_asked(rd: RunData) -> str | None:
    return None if rd.options.upload_certs else "not asked for (--upload-certs)"


def _upload_certs(rd: RunData) -> list[Outcome]:
    from bootstrap.cluster.certs_secret import upload
    from bootstrap.errors import PhaseError
    from bootstrap.pki import cert_upload

    cfg = rd.config
    external = cfg.cluster.etcd.external
    etcd_files = (
        None
        if external is None
        else cert_upload.ExternalEtcdFiles(
            *(
                str(rd.host_path(p)) if p else ""
                for p in (external.ca_file, external.cert_file, external.key_file)
            )
        )
    )
    files = cert_upload.files_to_share(rd.cert_dir, etcd_files)
    optional = set(cert_upload.EXTERNAL_ETCD_KEYS)
    missing = [str(path) for name, path in files.items() if name not in optional and not path.is_file()]
    if missing:
        raise PhaseError(f'{", ".join(missing)}: missing; run "bootstrap init phase certs" first')
    content = cert_upload.read_files(files)

    configured = cfg.init.certificate_key
    key_hex = configured or cert_upload.generate_key()
    key = cert_upload.decode_key(key_hex)

    def holds(sealed: Mapping[str, bytes]) -> bool:
        return cert_upload.holds(sealed, content, key)

    outcomes = upload(
        rd.applier, lambda: cert_upload.seal(content, key), holds, rd.options.certificate_key_ttl, rd.started
    )
    source = "the configured certificate key" if configured else "a newly generated certificate key"
    outcomes.insert(0, Outcome(False, f"Encrypting {len(files)} files with {source}"))
    if not rd.dry_run:  # a dry run uploaded nothing: its key opens nothing
        rd.certificate_key = key_hex
        rd.after_group(_END_OF_RUN, lambda: _show_key(rd, key_hex))
    return outcomes


def _show_key(rd: RunData, key_hex: str) -> None:
    """Print the key for the person who asked, unless a join command already carried it."""
    if rd.certificate_key_shown or rd.options.output != "text":
        return
    if rd.options.skip_certificate_key_print:
        rd.reporter.info(LABEL, "Certificate key withheld (--skip-certificate-key-print)")
        return
    rd.reporter.info(LABEL, "Using certificate key:")
    rd.reporter.text(key_hex)


UPLOAD_CERTS = Phase(
    name="upload-certs",
    help="Upload the control-plane certificates, encrypted, to the kubeadm-certs Secret",
    run=_upload_certs,
    skip_if=_not_asked,
)
