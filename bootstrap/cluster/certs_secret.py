"""``kube-system/kubeadm-certs``: the encrypted CAs a joining control-plane node downloads.

The Secret is owned (``ownerReferences``) by a bootstrap token Secret that authenticates nothing and
expires after the chosen lifetime, so the garbage collector deletes the certificates when the
token cleaner deletes the token. A Role lets the bootstrap-token group read the Secret, as kubeadm's.

Unlike kubeadm, an upload that finds the Secret already holding exactly these files under this key,
owned by a token that stays valid a while longer (:func:`reuse_margin`), changes nothing: a re-run
reports no change and keeps the expiry the first run set.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from bootstrap.cluster import objects
from bootstrap.cluster.apply import Applier
from bootstrap.config.tokens import TOKEN_GROUP
from bootstrap.results import Outcome

NAMESPACE = "kube-system"
SECRET_NAME = "kubeadm-certs"
ROLE_NAME = "kubeadm:kubeadm-certs"
DEFAULT_TTL = timedelta(hours=2)
OWNER_DESCRIPTION = "Owner of kube-system/kubeadm-certs: both are deleted when this token expires"
# A join that starts right after an upload reads the Secret within its discovery timeout (5 minutes by
# default) plus the download: a copy deleted sooner than this is uploaded again instead of kept.
REUSE_MARGIN = timedelta(minutes=15)


def reuse_margin(ttl: timedelta) -> timedelta:
    """How long a stored copy must still live to be kept (never more than half a fresh upload's life,
    so a short --certificate-key-ttl still lets a re-run keep what the run before uploaded)."""
    return min(REUSE_MARGIN, ttl / 2)


def owner_token_secret(token: str, expiration: datetime) -> dict[str, Any]:
    """A bootstrap token Secret with no usages: it only carries the expiry of the certificates."""
    secret = objects.token_secret(token, expiration, [], [], OWNER_DESCRIPTION)
    # Not labelled as init's own tokens: the bootstrap-token phase must never adopt this one.
    secret["metadata"].pop("labels", None)
    return secret


def certs_secret(sealed: Mapping[str, bytes], owner_name: str, owner_uid: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": SECRET_NAME,
            "namespace": NAMESPACE,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": owner_name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {name: base64.b64encode(blob).decode() for name, blob in sealed.items()},
    }


def certs_rbac() -> list[dict[str, Any]]:
    """Joining nodes (authenticated by a bootstrap token) may read this one Secret."""
    rule = {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET_NAME], "verbs": ["get"]}
    return [
        objects.role(ROLE_NAME, NAMESPACE, [rule]),
        objects.binding(
            ROLE_NAME,
            "Role",
            ROLE_NAME,
            [{"kind": "Group", "name": TOKEN_GROUP, "apiGroup": objects.RBAC}],
            NAMESPACE,
        ),
    ]


def sealed_data(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """The encrypted values of a Secret as the API returns it (base64 in ``data``)."""
    return {name: base64.b64decode(value) for name, value in (secret.get("data") or {}).items()}


def _valid_owner(applier: Applier, secret: Mapping[str, Any], until: datetime) -> datetime | None:
    """The expiry of the token that owns ``secret``, when that token exists and is valid at ``until``."""
    for ref in secret.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") != "Secret" or not str(ref.get("name", "")).startswith("bootstrap-token-"):
            continue
        owner = applier.read("Secret", NAMESPACE, ref["name"])
        if owner is None or owner.get("metadata", {}).get("uid") != ref.get("uid"):
            continue
        found = objects.token_of(owner)
        if found is not None and found[1] is not None and found[1] > until:
            return found[1]
    return None


def _why_upload_again(
    existing: Mapping[str, Any] | None,
    expiry: datetime | None,
    holds: Callable[[Mapping[str, bytes]], bool],
) -> str | None:
    """Why a stored copy is not kept (None when there is none): said, so a re-upload is never a mystery."""
    if existing is None:
        return None
    where = f"Secret {NAMESPACE}/{SECRET_NAME}"
    if not holds(sealed_data(existing)):
        return f"{where} holds other certificates, or is sealed under another key: uploading again"
    assert expiry is None
    return f"{where} is deleted within the reuse margin (or its owner token is gone): uploading again"


def upload(
    applier: Applier,
    seal: Callable[[], Mapping[str, bytes]],
    holds: Callable[[Mapping[str, bytes]], bool],
    ttl: timedelta,
    now: datetime,
) -> list[Outcome]:
    """Make kubeadm-certs hold what ``seal`` returns, owned by a token valid for ``ttl``.

    ``holds`` says whether values already stored open, with the user's key, to the files of this
    node (the crypto lives in :mod:`bootstrap.pki.cert_upload`, a layer above this one).
    """
    existing = applier.read("Secret", NAMESPACE, SECRET_NAME)
    expiry = _valid_owner(applier, existing, now + reuse_margin(ttl)) if existing is not None else None
    outcomes: list[Outcome]
    if existing is not None and expiry is not None and holds(sealed_data(existing)):
        until = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
        outcomes = [
            Outcome(
                False,
                f"Secret {NAMESPACE}/{SECRET_NAME} already holds these certificates under this key "
                f"(deleted at {until})",
            )
        ]
    else:
        why = _why_upload_again(existing, expiry, holds)
        token = objects.generate_token()
        owner = owner_token_secret(token, now + ttl)
        owner_name = owner["metadata"]["name"]
        created = applier.apply(owner)
        # The uid is the server's; a dry run created nothing, so there is none to refer to.
        stored = applier.read("Secret", NAMESPACE, owner_name)
        uid = str((stored or {}).get("metadata", {}).get("uid", ""))
        written = applier.apply(certs_secret(seal(), owner_name, uid))
        until = (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ")
        outcomes = [
            *([Outcome(False, why)] if why else []),
            Outcome(created.changed, f"{created.message} (owner of the certificates, expires {until})"),
            written,
        ]
    return outcomes + [applier.apply(obj) for obj in certs_rbac()]
