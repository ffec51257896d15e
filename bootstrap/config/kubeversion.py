"""The one parser of a Kubernetes version's major and minor (``v1.34.2`` -> 1, 34).

Free of pydantic: the PKI, the component manifests and the phases branch on the minor too.
"""


def major_minor(version: str) -> tuple[int, int]:
    """``(major, minor)`` of ``vX.Y.Z`` (the ``v`` optional); the caller has checked the form."""
    major, minor = version.removeprefix("v").split(".")[:2]
    return int(major), int(minor)


def minor_of(version: str) -> int:
    """The minor of ``v1.Y.Z``: what the rendered manifests and kubeconfigs vary with."""
    return major_minor(version)[1]
