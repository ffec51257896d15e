"""Renders the static pod manifests from the Jinja templates and parses each result back as YAML."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2
import yaml

from bootstrap.components.flags import Flag
from bootstrap.components.pods import BUILDERS, EtcdJoin, HostView, PodInputs, etcd
from bootstrap.components.spec import CONTROL_PLANE_TIER
from bootstrap.components.template_dir import templates_dir
from bootstrap.config import Config
from bootstrap.errors import PhaseError


@dataclass(frozen=True)
class Manifest:
    """One rendered static pod: its component name, YAML text, parsed object, and the inputs it was
    rendered from (its flags, probe and volumes), so nothing needs to parse the text back."""

    component: str
    text: str
    pod: dict[str, Any]
    inputs: PodInputs

    @property
    def flags(self) -> list[Flag]:
        return self.inputs.flags

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
        "component": inputs.component,
        "tier": CONTROL_PLANE_TIER,
        "image": inputs.image,
        "command": inputs.command,
        "probe": inputs.probe,
        "volumes": inputs.volumes,
        "env": inputs.env,
        "image_pull_policy": cfg.init.node_registration.image_pull_policy,
        **inputs.extra,
    }


def render_template(name: str, values: dict[str, Any]) -> str:
    try:
        return environment().get_template(name).render(**values)
    except jinja2.TemplateError as exc:
        raise PhaseError(f"template {name}: {exc}") from exc


def pod_inputs(
    component: str, cfg: Config, host: HostView, *, etcd_join: EtcdJoin | None = None
) -> PodInputs:
    """What ``component``'s manifest is rendered from (its flags, probe, volumes), without rendering.

    ``etcd_join`` makes the etcd pod that of a member joining an existing cluster."""
    if component == "etcd" and etcd_join is not None:
        return etcd(cfg, host, etcd_join)
    return BUILDERS[component](cfg, host)


def render(component: str, cfg: Config, host: HostView, *, etcd_join: EtcdJoin | None = None) -> Manifest:
    inputs = pod_inputs(component, cfg, host, etcd_join=etcd_join)
    text = render_template(f"{component}.yaml.j2", context(cfg, inputs)).rstrip("\n") + "\n"
    try:
        pod = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise PhaseError(f"template {component}.yaml.j2 rendered invalid YAML: {exc}") from exc
    if not isinstance(pod, dict) or pod.get("kind") != "Pod":
        raise PhaseError(f"template {component}.yaml.j2 did not render a Pod")
    return Manifest(component, text, pod, inputs)


def components_for(cfg: Config) -> list[str]:
    """The static pods this config runs: no etcd pod with external etcd."""
    return [c for c in BUILDERS if not (c == "etcd" and cfg.external_etcd)]
