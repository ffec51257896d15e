"""Adapter for join's ``control-plane-prepare/download-certs``: write the certificates init uploaded.

They were opened (and the key checked) in preflight; here they are written, keys (and sa.pub) 0600
and certificates 0644, each file only when its content differs. A dry run that could not have them
writes the run data's stand-in files into its own directory instead, and says what a real run would
have stopped on. Without ``--certificate-key`` the shared
files must already be on this node (preflight checked that), and the phase has nothing to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData


def _run(rd: RunData) -> list[Outcome]:
    from bootstrap.host.fs import write_atomic
    from bootstrap.workflow.joindata import join_data

    jd = join_data(rd)
    paths = jd.shared_cert_paths()
    outcomes = []
    shared = jd.shared_certs
    if jd.shared_certs_problem is not None:
        outcomes.append(Outcome(False, jd.shared_certs_problem, [], None, jd.shared_certs_problem))
    for key, content in sorted(shared.items()):
        path = paths.get(key)
        if path is None or not content:
            continue  # a key this version does not place, or a file the uploader did not have
        # Keys 0600 and certificates 0644, as kubeadm; sa.pub 0600 like the one init writes.
        private = key.endswith(".key") or key == "sa.pub"
        shown = rd.reported_path(path)
        if write_atomic(path, content, 0o600 if private else 0o644, dir_mode=0o755):
            outcomes.append(Outcome(True, f'Writing "{shown}" {jd.shared_certs_source}', [path]))
        else:
            outcomes.append(Outcome(False, f'"{shown}" matches the uploaded copy'))
    return outcomes


def _skip(rd: RunData) -> str | None:
    from bootstrap.workflow.joindata import join_data

    control_plane = join_data(rd).join_config.join.control_plane
    if control_plane is not None and not control_plane.certificate_key:
        return "no --certificate-key: the shared certificates are expected on this node already"
    return None


DOWNLOAD_CERTS = Phase(
    name="download-certs",
    help="Download the certificates shared between control-plane nodes from the kubeadm-certs Secret",
    run=_run,
    skip_if=_skip,
)
