"""RBAC for the stand-in API server's unprivileged identities, evaluated as the real authorizer does.

Roles, ClusterRoles and their bindings come from the store, so what ``bootstrap init`` creates (the
kubeadm bindings for the bootstrap-token group) is what grants a joining node its rights, and a token
without those bindings gets 403. The real API server also serves a few built-in ClusterRoles of its
own bootstrap policy; the ones the join flow relies on are defined here (they are not stored, so
listing ClusterRoles shows only what clients created).
"""

from __future__ import annotations

from typing import Any

from tests.standin.store import Obj, Resource, Store, resource_by_name

RBAC = "rbac.authorization.k8s.io"
CSR_GROUP = "certificates.k8s.io"

# The bootstrap-policy ClusterRoles a kubelet's TLS bootstrap uses (names and rules as the real ones).
BUILTIN_CLUSTER_ROLES: dict[str, list[Obj]] = {
    "system:node-bootstrapper": [
        {
            "apiGroups": [CSR_GROUP],
            "resources": ["certificatesigningrequests"],
            "verbs": ["create", "get", "list", "watch"],
        }
    ],
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": [
        {
            "apiGroups": [CSR_GROUP],
            "resources": ["certificatesigningrequests/nodeclient"],
            "verbs": ["create"],
        }
    ],
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": [
        {
            "apiGroups": [CSR_GROUP],
            "resources": ["certificatesigningrequests/selfnodeclient"],
            "verbs": ["create"],
        }
    ],
}


def _matches(values: list[Any] | None, wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values or [])


def _rule_allows(rule: Obj, verb: str, group: str, resource: str, name: str) -> bool:
    if not _matches(rule.get("verbs"), verb) or not _matches(rule.get("apiGroups"), group):
        return False
    resources = rule.get("resources") or []
    if not (
        _matches(resources, resource) or ("/" in resource and f"*/{resource.split('/', 1)[1]}" in resources)
    ):
        return False
    names = rule.get("resourceNames") or []
    return not names or name in names


def _subject_matches(subject: Obj, user: str, groups: list[str]) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user)
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        return user == f"system:serviceaccount:{subject.get('namespace')}:{name}"
    return False


def _rules(store: Store, role_ref: Obj, namespace: str) -> list[Obj]:
    kind, name = role_ref.get("kind"), str(role_ref.get("name", ""))
    if kind == "ClusterRole":
        res = resource_by_name(RBAC, "v1", "clusterroles")
        assert res is not None
        stored = store.get_or_none(res, "", name)
        if stored is not None:
            return list(stored.get("rules") or [])
        return BUILTIN_CLUSTER_ROLES.get(name, [])
    if kind == "Role":
        res = resource_by_name(RBAC, "v1", "roles")
        assert res is not None
        stored = store.get_or_none(res, namespace, name)
        return list((stored or {}).get("rules") or [])
    return []


def allowed(
    store: Store,
    user: str,
    groups: list[str],
    verb: str,
    res_group: str,
    resource: str,
    namespace: str | None,
    name: str,
) -> bool:
    """Whether a ClusterRoleBinding, or a RoleBinding in ``namespace``, grants ``verb`` on ``resource``
    (``res/sub`` for a subresource) to ``user``/``groups``."""
    crb = resource_by_name(RBAC, "v1", "clusterrolebindings")
    rb = resource_by_name(RBAC, "v1", "rolebindings")
    assert crb is not None and rb is not None
    bindings: list[tuple[Obj, str]] = [(b, "") for b in store.list(crb, None)[0]]
    if namespace:
        bindings += [(b, namespace) for b in store.list(rb, namespace)[0]]
    for binding, scope in bindings:
        if not any(_subject_matches(s, user, groups) for s in binding.get("subjects") or []):
            continue
        for rule in _rules(store, binding.get("roleRef") or {}, scope):
            if _rule_allows(rule, verb, res_group, resource, name):
                return True
    return False


def resource_named(res: Resource, sub: str) -> str:
    return f"{res.name}/{sub}" if sub else res.name
