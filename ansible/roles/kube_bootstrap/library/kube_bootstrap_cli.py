#!/usr/bin/python
"""Run ``bootstrap init``, ``join`` or ``reset`` with ``-o json`` and turn its result into a task result.

A module rather than ``command`` tasks because only a module can put the manifest diff into the task's
``diff`` (so ``--diff`` shows it) and run the dry run when the play is in check mode, from one task.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: kube_bootstrap_cli
short_description: Run the kube-bootstrap CLI and report its JSON result
description:
  - C(command=init) runs C(bootstrap init -o json); in check mode it runs C(bootstrap init --dry-run -o json)
    instead, which writes only into a temporary directory that is removed afterwards.
  - C(command=join) runs C(bootstrap join ENDPOINT -o json) with the token, CA hash and (for a control-plane
    join) certificate key given (C(--dry-run) in check mode: where the cluster or the token does not exist
    yet, the CLI plans against a stand-in cluster and says so).
  - C(command=upload-certs) runs C(bootstrap init phase upload-certs --upload-certs) with the certificate key
    given (C(--dry-run) in check mode: changed when the certificates are not in the cluster under that key).
  - C(command=reset) runs C(bootstrap reset --force -o json) (C(--dry-run) in check mode).
  - C(changed) comes from the result document; a failed run fails the task with the CLI's error message.
  - In diff mode, C(init) also runs C(bootstrap phase manifests --dry-run --diff) and returns its unified
    diffs as the task's diff; a C(join) in check mode returns the diffs of the manifests its dry run planned
    against the node's own.
options:
  executable: {description: Path of the bootstrap executable., type: path, required: true}
  command:
    {description: What to run., type: str, choices: [init, join, upload-certs, reset], default: init}
  config: {description: The kubeadm v1beta4 config file (init, join, upload-certs)., type: path}
  config_content:
    {description: "The config itself: used from a private temporary file in check mode, or when O(config)
     does not exist (the role keeps the config only in a real run).", type: str}
  api_server_endpoint: {description: The endpoint a join discovers the cluster at (host:port)., type: str}
  token: {description: The bootstrap token (init creates it; join authenticates with it)., type: str}
  ca_cert_hash: {description: The CA public key pin a join checks (sha256:...)., type: str}
  certificate_key:
    {description: Key of the uploaded control-plane certificates (init with upload_certs; a control-plane
     join)., type: str}
  upload_certs: {description: init uploads the control-plane certificates (--upload-certs)., type: bool}
  control_plane: {description: join as a control-plane node (--control-plane)., type: bool}
  rootfs: {description: Passed as --rootfs when set., type: path}
  skip_phases: {description: Passed as --skip-phases., type: list, elements: str, default: []}
  ignore_preflight_errors:
    {description: Passed as --ignore-preflight-errors., type: list, elements: str, default: []}
  settle: {description: Passed as --settle (init)., type: str}
  timeout: {description: Passed as --timeout., type: str}
author: kube-bootstrap maintainers
"""

DRYRUN_DIR_ENV = "BOOTSTRAP_DRYRUN_DIR"
# Where join writes its static pod manifests (kubeadm's staticPodPath), under the rootfs.
MANIFEST_DIR = "/etc/kubernetes/manifests"


def common_args(params, command):
    args = []
    if params["rootfs"]:
        args += ["--rootfs", params["rootfs"]]
    if params["timeout"]:
        args += ["--timeout", params["timeout"]]
    if command in ("init", "join") and params["settle"]:
        args += ["--settle", params["settle"]]
    return args


def phase_args(params):
    argv = []
    if params["skip_phases"]:
        argv += ["--skip-phases", ",".join(params["skip_phases"])]
    if params["ignore_preflight_errors"]:
        argv += ["--ignore-preflight-errors", ",".join(params["ignore_preflight_errors"])]
    return argv


def init_argv(params, dry_run):
    argv = [params["executable"], "init", "--config", params["config"], "-o", "json"]
    argv += common_args(params, "init")
    if params["token"]:
        argv += ["--token", params["token"]]
    if params["upload_certs"]:
        argv.append("--upload-certs")
    if params["certificate_key"]:
        argv += ["--certificate-key", params["certificate_key"]]
    argv += phase_args(params)
    if dry_run:
        argv.append("--dry-run")
    return argv


def join_argv(params, dry_run):
    argv = [params["executable"], "join", params["api_server_endpoint"], "-o", "json"]
    argv += ["--token", params["token"], "--discovery-token-ca-cert-hash", params["ca_cert_hash"]]
    if params["config"]:
        argv += ["--config", params["config"]]
    if params["control_plane"]:
        argv += ["--control-plane", "--certificate-key", params["certificate_key"]]
    argv += common_args(params, "join")
    argv += phase_args(params)
    if dry_run:
        argv.append("--dry-run")
    return argv


def upload_certs_argv(params, dry_run):
    argv = [params["executable"], "init", "phase", "upload-certs", "--upload-certs", "-o", "json"]
    argv += ["--certificate-key", params["certificate_key"], "--config", params["config"]]
    if params["rootfs"]:
        argv += ["--rootfs", params["rootfs"]]
    if dry_run:
        argv.append("--dry-run")
    return argv


def reset_argv(params, dry_run):
    argv = [params["executable"], "reset", "--force", "-o", "json", *common_args(params, "reset")]
    if dry_run:
        argv.append("--dry-run")
    return argv


def manifest_diff(module, params):
    """The unified diffs ``phase manifests --diff`` prints (text mode), with host paths in the headers."""
    skipped = {p.strip("/") for p in params["skip_phases"]}
    if "manifests" in skipped:
        return ""
    scratch = tempfile.mkdtemp(prefix="kube-bootstrap-diff-")
    try:
        argv = [params["executable"], "phase", "manifests", "--dry-run", "--diff"]
        argv += ["--config", params["config"]]
        if params["rootfs"]:
            argv += ["--rootfs", params["rootfs"]]
        rc, out, err = module.run_command(argv, environ_update={DRYRUN_DIR_ENV: scratch})
        if rc != 0:
            module.warn(f"bootstrap phase manifests --diff failed (rc {rc}): {err.strip()}")
            return ""
        # Text mode prints the plan summary after the diffs: keep only the unified diff lines.
        lines = []
        for line in out.replace(scratch, "").splitlines(keepends=True):
            if line[:1] not in ("-", "+", "@", " ", "\\", "\n"):
                break
            lines.append(line)
        return "".join(lines)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def planned_manifest_diff(doc, params):
    """Check mode with --diff, for a join: the manifests its dry run planned against the node's own
    (unified diffs with host paths in the headers, a new file diffed against nothing)."""
    planned = (doc.get("dryRunPlan") or {}).get("manifests") or {}
    root = params["rootfs"] or "/"
    chunks = []
    for name in sorted(planned):
        host_path = f"{MANIFEST_DIR}/{name}"
        current = os.path.join(root, host_path.lstrip("/"))
        before = ""
        if os.path.exists(current):
            with open(current, encoding="utf-8") as handle:
                before = handle.read()
        if before != planned[name]:
            lines = difflib.unified_diff(
                before.splitlines(keepends=True),
                planned[name].splitlines(keepends=True),
                fromfile=host_path if before else "/dev/null",
                tofile=host_path,
            )
            chunks.append("".join(lines))
    return "".join(chunks)


def diagnosis(doc):
    """What the failing phases said: their messages and any component diagnosis of a failed wait."""
    found = []
    for phase in doc.get("phases", []):
        if phase.get("status") != "failed":
            continue
        found.extend(phase.get("messages", []))
        for component in (phase.get("details") or {}).get("components", []):
            if component.get("diagnosis"):
                found.append({component.get("component"): component["diagnosis"]})
    return found


def plan_changes(doc, command):
    """Check mode: the phases a real run would change.

    For init and join, the phases whose files it would write. When the API server does not answer
    (check mode on a node whose control plane is down), a dry run lists every API action of
    upload-config, mark-control-plane and bootstrap-token as a change; those are reported but do not
    count. upload-certs writes no file: its change is the Secret.
    """
    plan = (doc.get("dryRunPlan") or {}).get("plan", [])
    if command == "upload-certs":
        return [p["phase"] for p in plan if p.get("wouldChange")]
    return [p["phase"] for p in plan if p.get("wouldChange") and p.get("files")]


def plan_failures(doc):
    """Check mode: what a real run would stop at (phase -> reason), e.g. a join whose discovery fails."""
    plan = (doc.get("dryRunPlan") or {}).get("plan", [])
    return {p["phase"]: p.get("wouldFail") for p in plan if p.get("status") == "would-fail"}



# Fields of a phase's details that are credentials (show-join-command's token and certificate key):
# a task result is printed with -v and kept in registered variables, so they never reach it.
CREDENTIAL_FIELDS = ("token", "certificateKey")


def redact_credentials(doc: dict) -> dict:
    """``doc`` with every phase's credential details replaced by a marker (the document is copied)."""
    phases = []
    for phase in doc.get("phases") or []:
        details = phase.get("details")
        if isinstance(details, dict) and any(details.get(f) for f in CREDENTIAL_FIELDS):
            details = {k: ("<redacted>" if k in CREDENTIAL_FIELDS and v else v) for k, v in details.items()}
            phase = {**phase, "details": details}
        phases.append(phase)
    return {**doc, "phases": phases} if "phases" in doc else dict(doc)


def main():
    module = AnsibleModule(
        argument_spec={
            "executable": {"type": "path", "required": True},
            "command": {"type": "str", "choices": ["init", "join", "upload-certs", "reset"], "default": "init"},
            "config": {"type": "path"},
            # The config may carry a bootstrap token (kube_bootstrap_config): never shown in a result.
            "config_content": {"type": "str", "no_log": True},
            "api_server_endpoint": {"type": "str"},
            # Credentials: Ansible masks their values wherever they would show in the task result.
            "token": {"type": "str", "no_log": True},
            "ca_cert_hash": {"type": "str"},
            "certificate_key": {"type": "str", "no_log": True},
            "upload_certs": {"type": "bool", "default": False},
            "control_plane": {"type": "bool", "default": False},
            "rootfs": {"type": "path"},
            "skip_phases": {"type": "list", "elements": "str", "default": []},
            "ignore_preflight_errors": {"type": "list", "elements": "str", "default": []},
            "settle": {"type": "str"},
            "timeout": {"type": "str"},
        },
        required_if=[
            ("command", "init", ["config"]),
            ("command", "join", ["api_server_endpoint", "token", "ca_cert_hash"]),
            ("control_plane", True, ["certificate_key"]),
            ("command", "upload-certs", ["certificate_key"]),
        ],
        supports_check_mode=True,
    )
    params = module.params
    dry_run = module.check_mode
    result = {"changed": False}
    scratch = tempfile.mkdtemp(prefix="kube-bootstrap-dryrun-") if dry_run else None
    config_copy = None
    try:
        if params["config_content"] is not None and (dry_run or not os.path.exists(params["config"] or "")):
            fd, config_copy = tempfile.mkstemp(prefix="kube-bootstrap-", suffix=".yaml")
            with os.fdopen(fd, "w") as handle:
                handle.write(params["config_content"])
            params["config"] = config_copy
        if params["command"] == "init" and module._diff:
            prepared = manifest_diff(module, params)
            if prepared:
                result["diff"] = {"prepared": prepared}
        build = {
            "init": init_argv,
            "join": join_argv,
            "upload-certs": upload_certs_argv,
            "reset": reset_argv,
        }[params["command"]]
        argv = build(params, dry_run)
        env = {DRYRUN_DIR_ENV: scratch} if scratch else {}
        rc, out, err = module.run_command(argv, environ_update=env)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        if config_copy:
            os.unlink(config_copy)
    # The command line carries the credentials: the result shows it with them replaced.
    secrets = {params["token"], params["certificate_key"]} - {None, ""}
    shown = ["<redacted>" if arg in secrets else arg for arg in argv]
    result.update(cmd=shown, rc=rc, stderr=err)
    try:
        doc = json.loads(out)
    except ValueError:
        said = (err.strip() or out.strip())[-2000:]
        module.fail_json(
            msg=f"bootstrap {params['command']} exited {rc} without a JSON result: {said}", **result
        )
    doc = redact_credentials(doc)
    result["result"] = doc
    for warning in doc.get("warnings", []):  # e.g. preflight errors ignored by name
        module.warn(warning)
    if rc != 0 or not doc.get("ok", False):
        error = doc.get("error") or {}
        result["exit_code"] = error.get("exitCode", rc)
        result["diagnosis"] = diagnosis(doc)
        message = error.get("message", err.strip())
        module.fail_json(
            msg=f"bootstrap {params['command']} failed (exit {result['exit_code']}): {message}", **result
        )
    if params["command"] == "reset":
        result["changed"] = bool(doc.get("changed"))
        result["removed"] = doc.get("removed", [])
        result["kept"] = doc.get("kept", [])
    elif dry_run:
        result["would_change"] = plan_changes(doc, params["command"])
        result["would_fail"] = plan_failures(doc)
        # A join dry run without the cluster (or without its certificates) plans against stand-ins.
        result["stand_in"] = (doc.get("dryRunPlan") or {}).get("standIn")
        if params["command"] == "join" and module._diff:
            prepared = planned_manifest_diff(doc, params)
            if prepared:
                result["diff"] = {"prepared": prepared}
        result["api_actions"] = (doc.get("dryRunPlan") or {}).get("apiActions", [])
        result["changed"] = bool(result["would_change"])
    else:
        result["changed_phases"] = [p["path"] for p in doc.get("phases", []) if p.get("changed")]
        result["changed"] = bool(result["changed_phases"])
    if "diff" in result and not result["changed"]:
        del result["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
