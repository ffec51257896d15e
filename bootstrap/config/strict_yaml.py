"""Strict, bounded YAML reading for config files: what kubeadm's strict decoder refuses, we refuse.

PyYAML's ``safe_load_all`` keeps the last of two duplicate keys, expands aliases without limit (a
few hundred bytes can stand for 10^9 nodes) and recurses once per nesting level. Here:

- a duplicate mapping key is an error naming the key and both lines;
- nesting deeper than :data:`MAX_DEPTH` levels (counted after alias expansion) is refused;
- a stream whose alias-expanded size exceeds :data:`MAX_NODES` nodes is refused; a real kubeadm
  config has a few hundred, so the limit is far beyond any real file yet small enough to walk fast;
- NUL and other characters YAML forbids, and values Python cannot represent (an integer of
  thousands of digits, a date such as 2024-13-45), are refused.

Every problem is one line, ``<file>:<line>:<column>: <message>``, raised as :class:`YamlError`.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bootstrap.config.validation import q

MAX_DEPTH = 64
MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """The text is not acceptable YAML; ``problems`` are one-line messages naming file, line and column."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Problem(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


def _value_error_guard(method: Any) -> Any:
    """Turn a ValueError/OverflowError raised while building a Python value into a marked problem."""

    def construct(self: _StrictLoader, node: Node) -> object:
        try:
            return method(self, node)
        except (ValueError, OverflowError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _Problem(node.start_mark, f"cannot read the value ({reason})") from None

    return construct


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that bounds nesting while composing and refuses duplicate keys."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self.duplicates: list[tuple[yaml.Mark, str]] = []

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # Bound the composer's own recursion before Python's limit does it with a RecursionError.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Problem(
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                    f"nested more than {MAX_DEPTH} levels deep",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node: MappingNode = super().compose_mapping_node(anchor)
        seen: dict[str, yaml.Mark] = {}
        for key, _ in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue
            first = seen.setdefault(key.value, key.start_mark)
            if first is not key.start_mark:
                self.duplicates.append(
                    (key.start_mark, f"{q(key.value)} (first set on line {first.line + 1})")
                )
        return node


for _tag, _method in list(yaml.SafeLoader.yaml_constructors.items()):
    if _tag is not None and _tag.endswith((":int", ":float", ":timestamp")):
        _StrictLoader.add_constructor(_tag, _value_error_guard(_method))


def _check_expanded(root: Node) -> None:
    """Refuse a document whose alias-expanded tree is too deep or too large (each node visited once)."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}

    def visit(node: Node, level: int) -> None:
        key = id(node)
        if key in sizes:
            if level + depths[key] > MAX_DEPTH:
                raise _Problem(node.start_mark, f"nested more than {MAX_DEPTH} levels deep through aliases")
            return
        if level > MAX_DEPTH:
            raise _Problem(node.start_mark, f"nested more than {MAX_DEPTH} levels deep through aliases")
        sizes[key] = -1  # in progress: meeting it again below means an alias refers to its own parent
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        size, depth = 1, 1
        for child in children:
            if sizes.get(id(child)) == -1:
                raise _Problem(child.start_mark, "an alias refers to a node containing it (recursive data)")
            visit(child, level + 1)
            size += sizes[id(child)]
            depth = max(depth, depths[id(child)] + 1)
            if size > MAX_NODES:
                raise _Problem(
                    node.start_mark,
                    f"expands to more than {MAX_NODES} nodes through aliases (real ones have a few hundred)",
                )
        sizes[key], depths[key] = size, depth

    visit(root, 1)


def _where(source: str, mark: yaml.Mark | None) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_documents(text: str, source: str) -> list[object]:
    """Every document of ``text`` as plain Python data; raises :class:`YamlError` on any problem."""
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise YamlError([f"{source}:{line}: contains a NUL byte; a config file is text"])
    docs: list[object] = []
    loader: _StrictLoader | None = None
    try:
        loader = _StrictLoader(text)  # checks every character up front
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            _check_expanded(node)
            if loader.duplicates:
                raise YamlError(
                    [f"{_where(source, mark)}: duplicate key {what}" for mark, what in loader.duplicates]
                )
            docs.append(loader.construct_document(node))
    except _Problem as exc:
        raise YamlError([f"{_where(source, exc.mark)}: {exc.message}"]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise YamlError(
            [f"{source}:{line}:{column}: character #x{exc.character:04x} is not allowed in YAML"]
            if isinstance(exc.character, int)
            else [f"{source}:{line}:{column}: {_one_line(str(exc))}"]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = _one_line(exc.problem or exc.context or "invalid YAML")
        context = f" ({_one_line(exc.context)})" if exc.context and exc.problem else ""
        raise YamlError([f"{_where(source, mark)}: invalid YAML: {problem}{context}"]) from None
    except yaml.YAMLError as exc:
        raise YamlError([f"{source}: invalid YAML: {_one_line(str(exc))}"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs
