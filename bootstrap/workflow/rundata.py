"""The shared run data every phase sees: options, config, paths and services, each built once, lazily.

Dry-run lives here, not in the phases: in dry-run the filesystem root points at a temporary
directory (see :mod:`bootstrap.workflow.dryrun`), and phases write there exactly as they would for
real. The logic behind each accessor lives in the domain packages; this module only wires it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.host.fs import Rootfs
from bootstrap.host.kubelet import (
    KUBELET_CONFIG,
    KUBELET_FLAGS_ENV,
    NoServiceManager,
    ServiceManager,
    Systemd,
    read_kubelet_config,
)
from bootstrap.output import Reporter

if TYPE_CHECKING:
    from bootstrap.cluster.apply import Applier
    from bootstrap.components.pods import HostView
    from bootstrap.config import Config
    from bootstrap.pki import KeySource, PkiSettings
    from bootstrap.wait.status import Freshness
    from bootstrap.wait.waiter import WaitPlan, WaitResult

KUBERNETES_DIR = "/etc/kubernetes"


def _no_api(admin: Path) -> Any:
    from bootstrap.cluster.client import ApiError

    raise ApiError(f"{admin} does not exist")


@dataclass
class RunOptions:
    """What the command line asked for; everything else is derived from it."""

    config_file: Path | None = None
    overrides: dict[str, object] = field(default_factory=dict)
    rootfs: Path | None = None
    dry_run: bool = False
    output: str = "text"
    verbose: bool = False
    ignore_preflight_errors: list[str] = field(default_factory=list)
    kubelet_config: Path | None = None  # the kubelet config to read staticPodPath from (host path)
    output_dir: Path | None = None  # write manifests here instead of the kubelet's watched path
    diff: bool = False  # show manifest diffs, write nothing
    quarantine_strays: bool = False
    timeout: float | None = (
        None  # wait-control-plane deadline (default: timeouts.controlPlaneComponentHealthCheck)
    )
    settle: float = 5.0  # seconds a component must stay healthy
    skip_token_print: bool = False  # show the join command with the token withheld
    upload_certs: bool = False  # run upload-certs (kubeadm's --upload-certs)
    certificate_key_ttl: timedelta = timedelta(hours=2)  # how long kubeadm-certs lives
    skip_certificate_key_print: bool = False  # never print the certificate key
    force_addons: bool = False  # replace a Corefile edited in the cluster (addon/coredns)


class RunData:
    """Config, paths, key source and reporter for one run; each built on first use."""

    def __init__(self, options: RunOptions, reporter: Reporter | None = None) -> None:
        self.options = options
        self.reporter = reporter or Reporter(options.output, verbose=options.verbose)
        self.started = datetime.now(UTC).replace(microsecond=0)
        self._keys: KeySource | None = None
        self._remove_dry_run_dir = False
        # Manifests this run wrote: component -> what the mirror pod looked like before the write.
        self.manifest_writes: dict[str, Freshness] = {}
        self.bootstrap_tokens: list[str] = []  # tokens this run created or reused (never printed whole)
        # The key kubeadm-certs was sealed with in this run (a credential: see phases/upload_certs.py).
        self.certificate_key: str | None = None
        self.certificate_key_shown = False
        self.dry_run_summary: dict[str, Any] | None = None
        # Host paths the manifests refer to that do not exist: component names by path.
        self.missing_references: dict[str, list[str]] = {}
        self._after_group: dict[str, Callable[[], None]] = {}

    @property
    def dry_run(self) -> bool:
        return self.options.dry_run

    def dry_run_stand_in(self) -> dict[str, Any] | None:
        """What a dry run planned against in place of a cluster it could not use (None: nothing)."""
        return None

    def validate(self) -> None:
        """Refuse bad input before anything is written, not even the lock: the config (and the
        kubelet config it is merged with), the ignored preflight names, the dry-run directory."""
        _ = self.config, self.ignored_preflight_errors, self.static_pod_path, self.fs

    @cached_property
    def ignored_preflight_errors(self) -> set[str]:
        """Preflight checks whose errors become warnings (the flag and the config together)."""
        from bootstrap.host.preflight_checks import normalize_ignored

        registration = self.config.init.node_registration
        return normalize_ignored(
            [*self.options.ignore_preflight_errors, *registration.ignore_preflight_errors]
        )

    def after_group(self, label: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, when the run leaves the phases labelled ``label`` (or stops early):
        for one summary of what several phases found, instead of a line from each."""
        self._after_group.setdefault(label, action)

    def leave_group(self, label: str | None = None) -> None:
        """Run the actions waiting for the end of ``label``'s phases (every group's when None)."""
        for key in [k for k in self._after_group if label is None or k == label]:
            self._after_group.pop(key)()

    def reported_path(self, real: Path | str) -> str:
        """How ``real`` appears in a result document: as a host path, without the rootfs or the
        dry-run directory. A path the run did not map (``--output-dir``) stays as it is."""
        from bootstrap.results import host_path

        out = self.options.output_dir
        if out is not None and not self.dry_run and Path(real).is_relative_to(out):
            return str(real)
        return host_path(real, self.fs.root)

    @cached_property
    def config(self) -> Config:
        from bootstrap.config import load_config

        cfg = load_config(self.options.config_file, self.options.overrides)
        for warning in cfg.warnings:
            self.reporter.warn(warning)
        return cfg

    @cached_property
    def real_fs(self) -> Rootfs:
        """The filesystem a real run would touch (``--rootfs`` or /)."""
        return Rootfs(self.options.rootfs)

    @cached_property
    def fs(self) -> Rootfs:
        """Where this run reads and writes: the real filesystem, or the dry-run directory."""
        if not self.dry_run:
            return self.real_fs
        return Rootfs(self.dry_run_dir)

    @cached_property
    def dry_run_dir(self) -> Path:
        from bootstrap.workflow.dryrun import prepare_directory

        seeded = (
            KUBERNETES_DIR,
            self.config.cert_dir,
            self.static_pod_path,
            KUBELET_CONFIG,
            KUBELET_FLAGS_ENV,
        )
        root, self._remove_dry_run_dir = prepare_directory(
            self.real_fs, seeded, self.reporter, quiet=self.options.diff
        )
        return root

    def host_path(self, host: str | Path) -> Path:
        """Where a host path lives for this run (rootfs and dry-run applied)."""
        return self.fs.path(host)

    @property
    def kubernetes_dir(self) -> Path:
        return self.host_path(KUBERNETES_DIR)

    @property
    def cert_dir(self) -> Path:
        return self.host_path(self.config.cert_dir)

    @cached_property
    def pki_settings(self) -> PkiSettings:
        from bootstrap.pki.from_config import pki_settings_from_config

        return pki_settings_from_config(self.config, self.started)

    @property
    def keys(self) -> KeySource:
        from bootstrap.pki.keys import KeySource, normalize_algorithm

        algorithm = normalize_algorithm(self.pki_settings.encryption_algorithm)
        if self._keys is not None and self._keys.algorithm != algorithm:
            self._keys.close()  # started ahead for another algorithm (see start_keys_ahead)
            self._keys = None
        if self._keys is None:
            self._keys = KeySource(algorithm)
        return self._keys

    def start_keys_ahead(self) -> None:
        """Start one key per core while the config is still being read, when it cannot change their
        algorithm: without a config file, or with one that never names encryptionAlgorithm, it is the
        default (no flag sets it). The plan's prefetch then tops up; a run that needs fewer keys (a
        re-run) wastes at most these few, and none is written. Should the guess ever be wrong,
        :attr:`keys` replaces the source (the algorithm is checked)."""
        from bootstrap.config.peek import may_choose_key_algorithm

        config_file = self.options.config_file
        if self._keys is not None or (config_file is not None and may_choose_key_algorithm(config_file)):
            return
        from bootstrap.config.keyalgorithms import DEFAULT_ENCRYPTION_ALGORITHM
        from bootstrap.pki.keys import KeySource

        self._keys = KeySource(DEFAULT_ENCRYPTION_ALGORITHM)
        self._keys.prefetch(os.cpu_count() or 1)

    @cached_property
    def kubelet_config_path(self) -> Path:
        """The kubelet config as the real kubelet sees it (never the dry-run copy)."""
        return self.real_fs.path(self.options.kubelet_config or KUBELET_CONFIG)

    @cached_property
    def static_pod_path(self) -> str:
        """The kubelet's watched directory (host path) this run writes to and kubelet-start configures.

        An explicit ``--kubelet-config`` wins, then the user's KubeletConfiguration document, then
        the kubelet config already on disk, then kubeadm's default.
        """
        from bootstrap.host.kubelet_config import static_pod_path

        existing = read_kubelet_config(self.kubelet_config_path)
        explicit = existing if self.options.kubelet_config else None
        return static_pod_path(explicit, self.config.kubelet, existing)

    @property
    def manifest_dir(self) -> Path:
        if self.options.output_dir is not None:
            out = self.options.output_dir
            return self.fs.path(out.resolve()) if self.dry_run else out
        return self.host_path(self.static_pod_path)

    @cached_property
    def service_manager(self) -> ServiceManager:
        if self.dry_run:
            return NoServiceManager("dry run")
        if self.options.rootfs is not None:
            return NoServiceManager("--rootfs: the host's services are not ours to touch")
        return Systemd()

    @property
    def reveal_join_token(self) -> bool:
        """Print the join command with its token: only for a person (text output) and a real token."""
        return self.options.output == "text" and not self.dry_run

    @cached_property
    def applier(self) -> Applier:
        """Creates or updates cluster objects with admin.conf; in a dry run, only records the actions."""
        from bootstrap.cluster.apply import ApiApplier, DryRunApplier
        from bootstrap.cluster.client import KubeApi, admin_api

        if self.dry_run:
            admin = self.real_fs.path(KUBERNETES_DIR) / "admin.conf"
            return DryRunApplier(lambda: KubeApi(admin) if admin.exists() else _no_api(admin))
        timeout = self.config.init.timeouts.kubernetes_api_call.total_seconds()
        return ApiApplier(admin_api(self.kubernetes_dir), timeout)

    def observe_mirror_hash(self, component: str) -> str | None:
        """The config.hash of ``component``'s mirror pod before we replace its manifest (None when
        there is none or the API is not reachable); a dry run asks nothing."""
        if self.dry_run:
            return None
        from bootstrap.wait.observe import mirror_pod_hash

        return mirror_pod_hash(
            self.kubernetes_dir / "admin.conf", component, self.config.node_name, self.reporter.debug
        )

    def control_plane_waiter(self, plan: WaitPlan) -> WaitResult | None:
        """Wait for the control plane; a dry run only says what it would wait for (None)."""
        if self.dry_run:
            from bootstrap.workflow.dryrun import announce_wait

            announce_wait(self.reporter, plan)
            return None
        from bootstrap.cluster.client import admin_api
        from bootstrap.wait.progress import progress_for
        from bootstrap.wait.waiter import ControlPlaneWaiter

        return ControlPlaneWaiter(plan, lambda: admin_api(plan.admin_conf.parent), progress_for()).run()

    def close(self) -> None:
        if self._remove_dry_run_dir:
            shutil.rmtree(self.dry_run_dir, ignore_errors=True)
            self._remove_dry_run_dir = False
        if self._keys is not None:
            self._keys.close()
            self._keys = None


def host_view(rd: RunData) -> HostView:
    """What rendering a manifest needs to know about the host (read now: the certs phase may have
    just created the CA key)."""
    from bootstrap.components.pods import PROXY_ENV_NAMES, HostView

    return HostView(
        dir_exists=lambda p: rd.real_fs.path(p).is_dir(),
        proxy_env={k: os.environ[k] for k in PROXY_ENV_NAMES if k in os.environ},
        external_ca=rd.cert_dir.joinpath("ca.crt").exists() and not rd.cert_dir.joinpath("ca.key").exists(),
    )
