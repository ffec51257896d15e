"""Setting one annotation in a manifest's text: only that changes, whatever the layout."""

from __future__ import annotations

from pathlib import Path

import yaml

from bootstrap.components.annotations import CERT_GENERATION, keep_generation, with_annotation
from bootstrap.components.render import Manifest

PLAIN = """\
apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-scheduler
    tier: control-plane
  name: kube-scheduler
  namespace: kube-system
spec:
  containers:
  - name: kube-scheduler  # a person's comment
"""


def expected(text: str, value: str) -> dict[str, object]:
    pod = yaml.safe_load(text)
    pod["metadata"].setdefault("annotations", {})[CERT_GENERATION] = value
    return dict(pod)


def test_an_annotations_block_is_added_under_metadata_and_nothing_else_moves() -> None:
    edited = with_annotation(PLAIN, CERT_GENERATION, "2026-01-01T00:00:00Z")
    assert yaml.safe_load(edited) == expected(PLAIN, "2026-01-01T00:00:00Z")
    assert edited.replace(f'  annotations:\n    {CERT_GENERATION}: "2026-01-01T00:00:00Z"\n', "") == PLAIN


def test_an_existing_value_is_replaced_and_other_annotations_are_kept() -> None:
    annotated = PLAIN.replace("metadata:\n", "metadata:\n  annotations:\n    a: b\n")
    first = with_annotation(annotated, CERT_GENERATION, "1")
    second = with_annotation(first, CERT_GENERATION, "2")
    pod = yaml.safe_load(second)
    assert pod["metadata"]["annotations"] == {CERT_GENERATION: "2", "a": "b"}
    assert second.count(CERT_GENERATION) == 1 and "# a person's comment" in second


def test_layouts_the_text_edit_does_not_know_are_rewritten_from_the_parsed_pod() -> None:
    flow = PLAIN.replace("metadata:\n", "metadata:\n  annotations: {a: b}\n")
    as_json = '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {}}'
    for text in (flow, as_json):
        assert yaml.safe_load(with_annotation(text, CERT_GENERATION, "3")) == expected(text, "3")


def test_a_re_render_keeps_the_generation_of_the_manifest_on_disk(tmp_path: Path) -> None:
    rendered = Manifest("kube-scheduler", PLAIN, yaml.safe_load(PLAIN), None)  # type: ignore[arg-type]
    on_disk = tmp_path / "kube-scheduler.yaml"
    assert keep_generation(on_disk, rendered) is rendered  # no file
    on_disk.write_text(PLAIN)
    assert keep_generation(on_disk, rendered) is rendered  # no annotation
    on_disk.write_text(with_annotation(PLAIN, CERT_GENERATION, "7"))
    kept = keep_generation(on_disk, rendered)
    assert kept.text == on_disk.read_text()
    assert kept.pod["metadata"]["annotations"] == {CERT_GENERATION: "7"}
    assert "annotations" not in rendered.pod["metadata"]  # the rendered one is not changed
