"""The run data of ``bootstrap join``: init's :class:`RunData` with the cluster's settings as its config.

A joining node has two configurations. Its own, the JoinConfiguration (flags and ``--config``), is read
and validated first, before anything is sent or written. The init-shaped :class:`Config` that init's
certificate, kubeconfig, manifest and kubelet code runs against is built later, when a phase first
needs it: the cluster's ClusterConfiguration (``kube-system/kubeadm-config``, read with the bootstrap
token once discovery has established trust) with this node's nodeRegistration, its
``controlPlane.localAPIEndpoint``, its timeouts and its KubeletConfiguration merged over the
cluster's, all checked by the same loader as init's config.

A dry run that cannot reach a cluster still plans every phase, as kubeadm's does since v1.32: the
cluster's settings are then kubeadm's defaults, and the cluster is a *stand-in*: the server discovery
was asked to use, with a throwaway CA made in memory for this run, and for a control-plane node
throwaway shared files (CAs, service-account key) in place of Secret ``kube-system/kubeadm-certs``.
A dry run whose cluster answers but whose Secret cannot be opened plans with throwaway shared files
the same way. This class alone decides between the cluster and the stand-in (:attr:`JoinRunData.stand_in`
says which parts stand in, and why); the stand-in is never sent anywhere, and real runs never make one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from bootstrap.host.kubelet import KUBELET_CONF, KUBELET_CONFIG, KUBELET_FLAGS_ENV
from bootstrap.workflow.rundata import KUBERNETES_DIR, RunData, RunOptions

if TYPE_CHECKING:
    from bootstrap.cluster.client import KubeApi
    from bootstrap.cluster.discovery import DiscoveredCluster
    from bootstrap.cluster.joining import ClusterSettings
    from bootstrap.config import Config, JoinConfig
    from bootstrap.pki.throwaway import PemPair

KUBELET_DIR = "/var/lib/kubelet"
BOOTSTRAP_KUBELET_CONF = f"{KUBERNETES_DIR}/bootstrap-kubelet.conf"
# A dry run without a cluster still needs something to discover against; it never leaves this host.
DRY_RUN_DISCOVERY_TIMEOUT = 3.0


@dataclass
class JoinOptions(RunOptions):
    """``bootstrap join``'s command line: init's run options plus the endpoint and join's flags."""

    endpoint: str | None = None
    join_overrides: dict[str, object] = field(default_factory=dict)


class ClusterUnavailable(Exception):
    """A dry run could not reach the cluster; the message says why (real runs raise the cause)."""


# What can stand in, as the result document names it.
STAND_IN_CLUSTER_CA = "cluster-ca"
STAND_IN_CLUSTER_SETTINGS = "cluster-settings"
STAND_IN_SHARED_CERTS = "shared-certificates"
_SHARED_CERTS_SOURCE = "Secret kube-system/kubeadm-certs"


@dataclass
class StandIn:
    """What a dry run plans against instead of the cluster: the first reason, the parts, and the
    short words every outcome resting on it carries."""

    reason: str
    note: str
    parts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "replaces": list(self.parts)}


class JoinRunData(RunData):
    """Run data for join: the node's JoinConfiguration, discovery, and the cluster-derived config."""

    options: JoinOptions

    def __init__(self, options: JoinOptions, reporter: Any = None) -> None:
        super().__init__(options, reporter)
        self.cluster_problem: str | None = None  # why a dry run works without the cluster
        self.shared_certs_problem: str | None = None  # why a dry run's shared files stand in
        self.stand_in: StandIn | None = None
        self._stand_in_ca: PemPair | None = None

    # -- this node's own configuration -------------------------------------------------------
    @cached_property
    def join_config(self) -> JoinConfig:
        from bootstrap.config import load_join_config

        cfg = load_join_config(
            self.options.config_file, self.options.join_overrides, api_server_endpoint=self.options.endpoint
        )
        for warning in cfg.warnings:
            self.reporter.warn(warning)
        return cfg

    @property
    def control_plane(self) -> bool:
        return self.join_config.control_plane

    @property
    def node_name(self) -> str:
        return self.join_config.node_name

    def validate(self) -> None:
        """Bad input stops the run before anything is sent or written: the JoinConfiguration (with
        its KubeletConfiguration), the ignored preflight names and, for a dry run, its directory."""
        _ = self.join_config, self.ignored_preflight_errors, self.fs

    @cached_property
    def ignored_preflight_errors(self) -> set[str]:
        from bootstrap.host.preflight_checks import normalize_ignored

        registration = self.join_config.join.node_registration
        return normalize_ignored(
            [*self.options.ignore_preflight_errors, *registration.ignore_preflight_errors]
        )

    @cached_property
    def dry_run_dir(self) -> Path:
        from bootstrap.workflow.dryrun import prepare_directory

        # Seeded without the cluster's settings (they may be out of reach): the directories join
        # writes under hold the certificate directory and the kubelet's files.
        seeded = (KUBERNETES_DIR, KUBELET_CONFIG, KUBELET_FLAGS_ENV, f"{KUBELET_DIR}/pki")
        root, self._remove_dry_run_dir = prepare_directory(self.real_fs, seeded, self.reporter)
        return root

    # -- the cluster ---------------------------------------------------------------------------
    @cached_property
    def discovered(self) -> DiscoveredCluster:
        """The cluster's CA and server, trusted (token or file discovery); in a dry run without a
        cluster, the stand-in's."""
        from bootstrap.cluster.discovery import TokenDiscovery, discover_file, discover_token
        from bootstrap.errors import BootstrapError, ConfigError

        join = self.join_config.join
        timeout = join.timeouts.discovery.total_seconds()
        if self.dry_run:
            timeout = min(timeout, DRY_RUN_DISCOVERY_TIMEOUT)
        try:
            token = join.discovery.bootstrap_token
            if token is not None:
                found = discover_token(
                    TokenDiscovery(
                        endpoint=token.api_server_endpoint,
                        token=token.token,
                        ca_cert_hashes=tuple(token.ca_cert_hashes),
                        unsafe_skip_ca_verification=token.unsafe_skip_ca_verification,
                        timeout=timeout,
                    ),
                    progress=self.reporter.debug,
                )
            else:
                assert join.discovery.file is not None  # the loader requires one of the two
                found = discover_file(
                    join.discovery.file.kube_config_path, timeout=timeout, progress=self.reporter.debug
                )
        except ConfigError:
            raise
        except BootstrapError as exc:
            if not self.dry_run:
                raise
            self._note_unavailable(exc.message)
            return self._stand_in_cluster()
        for warning in found.warnings:
            self.reporter.warn(warning)
        return found

    def _note_unavailable(self, why: str) -> None:
        if self.cluster_problem is None:
            self.cluster_problem = why
            self.reporter.warn(
                f"[dryrun] the cluster is out of reach ({why}); planning with kubeadm's defaults "
                "against a stand-in cluster"
            )

    def _unavailable(self, why: str) -> NoReturn:
        self._note_unavailable(why)
        raise ClusterUnavailable(why)

    def _stands_in(self, part: str, reason: str, note: str) -> None:
        if self.stand_in is None:
            self.stand_in = StandIn(reason, note)
        if part not in self.stand_in.parts:
            self.stand_in.parts.append(part)

    def _stand_in_cluster(self) -> DiscoveredCluster:
        """The server discovery was asked to use, with a throwaway CA; it is never contacted."""
        from urllib.parse import urlsplit

        from bootstrap.cluster.discovery import DiscoveredCluster, file_server
        from bootstrap.pki.from_config import pki_settings_from_config
        from bootstrap.pki.throwaway import throwaway_ca

        assert self.cluster_problem is not None
        discovery = self.join_config.join.discovery
        if discovery.bootstrap_token is not None:
            server = f"https://{discovery.bootstrap_token.api_server_endpoint}"
        else:
            assert discovery.file is not None
            source = discovery.file.kube_config_path
            # An unreadable file, or a URL that did not answer, names no server: its origin is the guess.
            server = file_server(source) or f"https://{urlsplit(source).netloc or source}"
        # Not self.config: that may be what asked for discovery. The plan's config is this one.
        planned = pki_settings_from_config(self._planned_config(None), self.started)
        self._stand_in_ca = throwaway_ca("ca", planned)
        self._stands_in(STAND_IN_CLUSTER_CA, self.cluster_problem, "stand-in CA: the cluster is out of reach")
        return DiscoveredCluster(server=server, ca_pem=self._stand_in_ca.cert, kubeconfig="")

    def cluster_reachable(self) -> bool:
        """Whether the cluster's settings can be had (a dry run may plan without them)."""
        _ = self.discovered
        try:
            _ = self.cluster_settings
        except ClusterUnavailable:
            return False
        return True

    def dry_run_stand_in(self) -> dict[str, Any] | None:
        return self.stand_in.to_dict() if self.stand_in is not None else None

    @property
    def credentials_stand_in(self) -> bool:
        """Whether this run's certificates (and so its kubeconfigs) chain to a stand-in CA: they must
        not be presented to anything."""
        parts = self.stand_in.parts if self.stand_in is not None else []
        return STAND_IN_CLUSTER_CA in parts or STAND_IN_SHARED_CERTS in parts

    @property
    def stand_in_note(self) -> str | None:
        """What every outcome that rests on a stand-in adds to its message (None: nothing stands in)."""
        return self.stand_in.note if self.stand_in is not None else None

    @property
    def tls_bootstrap_token(self) -> str:
        from bootstrap.errors import ConfigError

        join = self.join_config.join
        token = join.discovery.tls_bootstrap_token
        if not token:
            raise ConfigError(
                "discovery.tlsBootstrapToken: is required (--tls-bootstrap-token or --token): the kubelet "
                "authenticates with it for its client certificate"
            )
        return token

    @cached_property
    def token_api(self) -> KubeApi:
        """A client with the bootstrap token, to the server cluster-info names."""
        from bootstrap.cluster.client import KubeApi
        from bootstrap.cluster.joining import token_credentials

        found = self.discovered
        if self.cluster_problem is not None:  # the stand-in is never contacted
            raise ClusterUnavailable(self.cluster_problem)
        return KubeApi(token_credentials(found.server, found.ca_pem, self.tls_bootstrap_token))

    @cached_property
    def cluster_settings(self) -> ClusterSettings:
        from bootstrap.cluster.joining import read_cluster_settings
        from bootstrap.errors import BootstrapError

        if self.cluster_problem is not None:
            raise ClusterUnavailable(self.cluster_problem)
        try:
            return read_cluster_settings(self.token_api)
        except BootstrapError as exc:
            if not self.dry_run:
                raise
            self._unavailable(exc.message)

    @cached_property
    def config(self) -> Config:
        """The init-shaped configuration of this node, from the cluster's settings and its own."""
        try:
            settings = self.cluster_settings
        except ClusterUnavailable as exc:
            self._stands_in(STAND_IN_CLUSTER_SETTINGS, str(exc), "stand-in: the cluster is out of reach")
            return self._planned_config(None)
        return self._planned_config(settings)

    def _planned_config(self, settings: ClusterSettings | None) -> Config:
        """This node's config over the cluster's ``settings``, or over kubeadm's defaults (None)."""
        import yaml

        from bootstrap.config import load_config_text, schema
        from bootstrap.host.kubelet_config import deep_merge

        join = self.join_config.join
        registration = schema.dump(join.node_registration, exclude_none=True)
        taints = join.node_registration.taints
        if join.control_plane is None and taints:
            # As kubeadm: a worker's kubelet registers the node with them (no mark-control-plane).
            value = ",".join(
                f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in taints
            )
            registration.setdefault("kubeletExtraArgs", []).append(
                {"name": "register-with-taints", "value": value}
            )
        init: dict[str, Any] = {
            "apiVersion": join.api_version,
            "kind": "InitConfiguration",
            "nodeRegistration": registration,
            "timeouts": schema.dump(join.timeouts),
        }
        if join.control_plane is not None:
            init["localAPIEndpoint"] = schema.dump(join.control_plane.local_api_endpoint)
        else:
            # A worker runs no API server; any address will do, and guessing one would only warn.
            init["localAPIEndpoint"] = {"advertiseAddress": "127.0.0.1"}
        if settings is not None:
            cluster: object = yaml.safe_load(settings.cluster_configuration)
            kubelet = deep_merge(settings.kubelet_configuration, self.join_config.kubelet or {})
            source = "the cluster's kube-system/kubeadm-config with this node's JoinConfiguration"
        else:
            cluster = {"apiVersion": join.api_version, "kind": "ClusterConfiguration"}
            kubelet = dict(self.join_config.kubelet or {})
            source = "kubeadm's defaults (dry run without the cluster) with this node's JoinConfiguration"
        if isinstance(cluster, dict):
            # Settings of the first node that describe that node, not this one.
            cluster.pop("dryRun", None)
        documents = [init, cluster]
        if kubelet:
            kubelet.setdefault("apiVersion", "kubelet.config.k8s.io/v1beta1")
            kubelet.setdefault("kind", "KubeletConfiguration")
            documents.append(kubelet)
        cfg = load_config_text(yaml.safe_dump_all(documents, sort_keys=False), source)
        for warning in cfg.warnings:
            self.reporter.debug(warning)  # the cluster's settings are init's business, not this node's
        return cfg

    @cached_property
    def shared_certs(self) -> dict[str, bytes]:
        """The uploaded certificate files, opened with ``--certificate-key`` (Secret data key -> content).

        A dry run that cannot have them (no cluster; no Secret; a key that does not open it) gets
        throwaway files instead; a Secret problem is then said once as what stops a real run."""
        from bootstrap.errors import BootstrapError
        from bootstrap.pki.throwaway import throwaway_shared_files

        try:
            return self._uploaded_certs()
        except ClusterUnavailable as exc:
            reason = str(exc)
            note = "stand-in shared certificates: the cluster is out of reach"
        except BootstrapError as exc:
            if not self.dry_run:
                raise
            from bootstrap.workflow.checking import DRY_RUN_PREFIX
            from bootstrap.workflow.dryrun import STOPS_HERE

            reason = self.shared_certs_problem = exc.message
            note = f"stand-in shared certificates: {_SHARED_CERTS_SOURCE} cannot be used"
            self.reporter.warn(f"{DRY_RUN_PREFIX}{reason}; {STOPS_HERE} (planning with stand-in files)")
        files = throwaway_shared_files(self.pki_settings, self.shared_cert_paths(), self._stand_in_ca)
        self._stands_in(STAND_IN_SHARED_CERTS, reason, note)
        return files

    @property
    def shared_certs_source(self) -> str:
        """Where :attr:`shared_certs` came from, for the messages that write them."""
        stood_in = self.stand_in is not None and STAND_IN_SHARED_CERTS in self.stand_in.parts
        return "made for this dry run" if stood_in else f"from {_SHARED_CERTS_SOURCE}"

    def _uploaded_certs(self) -> dict[str, bytes]:
        from bootstrap.cluster.joining import CERTS_SECRET_MISSING, UPLOAD_CERTS_COMMAND, read_certs_secret
        from bootstrap.errors import PhaseError
        from bootstrap.pki.cert_upload import CertificateKeyError, decode_key, open_all

        control_plane = self.join_config.join.control_plane
        assert control_plane is not None and control_plane.certificate_key
        sealed = read_certs_secret(self.token_api)
        if sealed is None:
            # Gone after its lifetime: a node that downloaded them already (a re-run) has what it needs.
            paths = self.shared_cert_paths()
            if self.joined_already() and all(p.exists() for p in paths.values()):
                return {key: path.read_bytes() for key, path in paths.items()}
            raise PhaseError(CERTS_SECRET_MISSING)
        try:
            return open_all(sealed, decode_key(control_plane.certificate_key))
        except CertificateKeyError:
            raise PhaseError(
                "the certificate key does not decrypt Secret kube-system/kubeadm-certs (a wrong key, or the "
                f'certificates were uploaded again with another one): run "{UPLOAD_CERTS_COMMAND}" on a '
                "control-plane node and join with the key it prints"
            ) from None

    def shared_cert_paths(self) -> dict[str, Path]:
        """Where each shared file goes on this node (Secret data key -> path for this run)."""
        from bootstrap.pki.cert_upload import EXTERNAL_ETCD_KEYS, ExternalEtcdFiles, files_to_share

        external = self.config.cluster.etcd.external
        files = (
            ExternalEtcdFiles(external.ca_file, external.cert_file, external.key_file)
            if external is not None
            else None
        )
        paths = files_to_share(self.cert_dir, files)
        # External etcd files are named by absolute host paths: map them into this run's filesystem.
        return {k: self.host_path(p) if k in EXTERNAL_ETCD_KEYS else p for k, p in paths.items()}

    # -- this node -----------------------------------------------------------------------------
    def kubelet_api(self) -> KubeApi:
        """A client with ``kubelet.conf`` (written by the kubelet's TLS bootstrap), its file references
        resolved inside ``--rootfs``; an :class:`ApiError` when it is not there or not usable yet."""
        from bootstrap.cluster.client import KubeApi
        from bootstrap.cluster.joining import kubeconfig_in_rootfs

        return KubeApi(kubeconfig_in_rootfs(self.real_fs.path(KUBELET_CONF), self.real_fs.path))

    def joined_already(self) -> bool:
        """This machine is the node of that name already: its kubelet.conf authenticates as the node."""
        from bootstrap.cluster.client import ApiError
        from bootstrap.cluster.joining import client_common_name

        try:
            api = self.kubelet_api()
        except ApiError:
            return False
        try:
            if client_common_name(api.credentials) != f"system:node:{self.node_name}":
                return False
            api.read_node(self.node_name)
        except ApiError:
            return False
        finally:
            api.close()
        return True

    def close(self) -> None:
        api = self.__dict__.get("token_api")
        if api is not None:
            api.close()
        super().close()


def join_data(rd: RunData) -> JoinRunData:
    """``rd`` as join's run data (join's phases run only in a join)."""
    assert isinstance(rd, JoinRunData), "a join phase ran outside bootstrap join"
    return rd
