"""The ``bootstrap join`` command lines that init and ``token create --print-join-command`` print.

Pure text: the caller decides whether the token and the certificate key (both credentials) are
shown, and passes either the real values or placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass

WITHHELD = "<value withheld>"
KEY_PLACEHOLDER = "<certificate-key>"
UPLOAD_COMMAND = "bootstrap init phase upload-certs --upload-certs"


@dataclass(frozen=True)
class JoinCommand:
    endpoint: str  # host:port the joining node discovers the cluster through
    token: str
    ca_hash: str  # sha256:<hex>
    certificate_key: str | None = None  # set when this run uploaded the certificates
    control_plane_possible: bool = True  # a cluster without controlPlaneEndpoint takes no more

    def worker(self, token: str | None = None) -> str:
        return (
            f"bootstrap join {self.endpoint} --token {token or self.token} "
            f"--discovery-token-ca-cert-hash {self.ca_hash}"
        )

    def control_plane(self, token: str | None = None, key: str | None = None) -> str:
        shown = key or self.certificate_key or KEY_PLACEHOLDER
        return f"{self.worker(token)} --control-plane --certificate-key {shown}"

    def control_plane_redacted(self, token: str) -> str | None:
        """The control-plane command for a document: the token as given, the key never (None when
        the cluster cannot take control-plane nodes)."""
        if not self.control_plane_possible:
            return None
        return self.control_plane(token, "<redacted>" if self.certificate_key else KEY_PLACEHOLDER)

    def text(self, withhold_token: bool, withhold_key: bool) -> tuple[str, bool]:
        """Both commands for a person, and whether the text carries the certificate key."""
        token = WITHHELD if withhold_token else self.token
        worker = f"Join worker nodes by running on each, as root:\n\n  {self.worker(token)}\n"
        if not self.control_plane_possible:
            return (
                "Control-plane nodes cannot join this cluster: it has no controlPlaneEndpoint (a stable "
                "address, such as a load balancer's, set with --control-plane-endpoint at init).\n\n"
                + worker,
                False,
            )
        if self.certificate_key is None:
            return (
                "To join control-plane nodes, first upload the certificates from this node:\n\n"
                f"  {UPLOAD_COMMAND}\n\n"
                "then run on each new control-plane node, as root, with the key that command prints:\n\n"
                f"  {self.control_plane(token, KEY_PLACEHOLDER)}\n\n" + worker,
                False,
            )
        key = WITHHELD if withhold_key else self.certificate_key
        return (
            "Join control-plane nodes by running on each, as root:\n\n"
            f"  {self.control_plane(token, key)}\n\n"
            "The certificate key decrypts the cluster's CA keys: keep it secret. The uploaded "
            "certificates are deleted when their lifetime (--certificate-key-ttl, 2h by default) ends; "
            f'then run "{UPLOAD_COMMAND}" on a control-plane node for a new key.\n\n' + worker,
            not withhold_key,
        )
