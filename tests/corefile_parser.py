"""A small Corefile reader for the tests: no registry we reach ships a CoreDNS binary to check with.

It reads what CoreDNS's own Caddyfile lexer reads: server blocks (``keys { ... }``), one directive
per line with its arguments, and nested blocks of sub-directives; braces must balance. Plugin
names are checked against the plugins a stock CoreDNS build knows.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

# The plugins of a stock CoreDNS (plugin.cfg of coredns/coredns), enough for what kubeadm writes.
KNOWN_PLUGINS = frozenset(
    {
        "acl",
        "any",
        "auto",
        "autopath",
        "bind",
        "bufsize",
        "cache",
        "cancel",
        "chaos",
        "clouddns",
        "debug",
        "dns64",
        "dnssec",
        "dnstap",
        "erratic",
        "errors",
        "etcd",
        "file",
        "forward",
        "geoip",
        "grpc",
        "header",
        "health",
        "hosts",
        "k8s_external",
        "kubernetes",
        "loadbalance",
        "local",
        "log",
        "loop",
        "metadata",
        "minimal",
        "multisocket",
        "nsid",
        "pprof",
        "prometheus",
        "ready",
        "reload",
        "rewrite",
        "root",
        "route53",
        "secondary",
        "sign",
        "template",
        "timeouts",
        "tls",
        "trace",
        "transfer",
        "tsig",
        "view",
        "whoami",
    }
)


class CorefileError(ValueError):
    pass


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)

    def sub(self, name: str) -> list[Directive]:
        return [d for d in self.block if d.name == name]


@dataclass
class ServerBlock:
    keys: list[str]
    directives: list[Directive]

    def plugin(self, name: str) -> Directive:
        found = [d for d in self.directives if d.name == name]
        if len(found) != 1:
            raise CorefileError(f"expected one {name} directive, found {len(found)}")
        return found[0]


def parse(text: str) -> list[ServerBlock]:
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(shlex.split(line))
    depth = sum(w.count("{") - w.count("}") for words in lines for w in words)
    if depth != 0:
        raise CorefileError(f"unbalanced braces ({depth:+d})")
    position = 0

    def block() -> list[Directive]:
        nonlocal position
        out: list[Directive] = []
        while position < len(lines):
            words = lines[position]
            position += 1
            if words == ["}"]:
                return out
            opens = words[-1] == "{"
            if opens:
                words = words[:-1]
            if not words or "{" in words or "}" in words:
                raise CorefileError(f"cannot read line {' '.join(lines[position - 1])!r}")
            directive = Directive(words[0], words[1:])
            if opens:
                directive.block = block()
            out.append(directive)
        raise CorefileError("a block is not closed")

    servers = []
    while position < len(lines):
        words = lines[position]
        position += 1
        if words[-1] != "{" or len(words) < 2:
            raise CorefileError(f"expected a server block, got {' '.join(words)!r}")
        servers.append(ServerBlock(words[:-1], block()))
    for server in servers:
        for directive in server.directives:
            if directive.name not in KNOWN_PLUGINS:
                raise CorefileError(f"unknown plugin {directive.name!r}")
    return servers
