"""Renders the static pod manifests from the Jinja templates and parses each result back as YAML."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import yaml

from bootstrap.components.pods import BUILDERS, HostView, PodInputs, startup_failure_threshold
from bootstrap.components.templates import templates_dir
from bootstrap.components.versions import Features
from bootstrap.config import Config
from bootstrap.config.kubeversion import minor_of
from bootstrap.errors import PhaseError


@dataclass(frozen=True)
class Manifest:
    """One rendered static pod: its component name, file name, YAML text and parsed object."""

    component: str
    text: str
    pod: dict[str, Any]

    @property
    def filename(self) -> str:
        return f"{self.component}.yaml"


# libyaml's safe loader and dumper when PyYAML has them: the same documents, several times faster than
# the pure-Python ones, and every manifest is rendered (scalar by scalar) and parsed on each run.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def yaml_scalar(value: object) -> str:
    """A scalar as YAML writes it, quoted only when YAML needs quotes."""
    dumped = yaml.dump(value, Dumper=_DUMPER, default_flow_style=True, width=10_000)
    return dumped.removesuffix("\n").removesuffix("\n...")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["q"] = yaml_scalar
    return env


def context(cfg: Config, inputs: PodInputs) -> dict[str, Any]:
    return {
        "image": inputs.image,
        "command": inputs.command,
        "probe": inputs.probe,
        "probe_port_named": Features(minor_of(cfg.kubernetes_version)).named_probe_port,
        "volumes": inputs.volumes,
        "env": inputs.env,
        "image_pull_policy": cfg.init.node_registration.image_pull_policy,
        "startup_failure_threshold": startup_failure_threshold(cfg),
        "minor": minor_of(cfg.kubernetes_version),
        **inputs.extra,
    }


def render_template(name: str, values: dict[str, Any]) -> str:
    try:
        return environment().get_template(name).render(**values)
    except jinja2.TemplateError as exc:
        raise PhaseError(f"template {name}: {exc}") from exc


def render(component: str, cfg: Config, host: HostView) -> Manifest:
    inputs = BUILDERS[component](cfg, host)
    text = render_template(f"{component}.yaml.j2", context(cfg, inputs)).rstrip("\n") + "\n"
    try:
        pod = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise PhaseError(f"template {component}.yaml.j2 rendered invalid YAML: {exc}") from exc
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        raise PhaseError(f"template {component}.yaml.j2 did not render a Pod")
    return Manifest(component, text, pod)


def components_for(cfg: Config) -> list[str]:
    """The static pods this config runs: no etcd pod with external etcd."""
    return [c for c in BUILDERS if not (c == "etcd" and cfg.external_etcd)]
