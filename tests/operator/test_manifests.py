"""Reading manifest files into an inventory (``manifests.py``): names, types, duplicates."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from aiguillage.operator.inventory import Inventory
from aiguillage.operator.manifests import load

ROUTE = """\
apiVersion: aiguillage.dev/v1alpha1
kind: AIRoute
metadata: {{name: chat, namespace: apps}}
spec:
  model: chat
  {residency}
  targets: [{{provider: eu, model: m}}]
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def read(*paths: Path) -> tuple[Inventory, list[str]]:
    inv = Inventory()
    return inv, [str(p) for p in load(paths, None, inv)]


def test_an_object_defined_twice_names_both_places(tmp_path: Path) -> None:
    eu_only = write(
        tmp_path, "a/route.yaml", ROUTE.format(residency="residency: {locations: [EU]}")
    )
    anywhere = write(tmp_path, "b/route.yaml", ROUTE.format(residency=""))

    inv, problems = read(tmp_path)

    assert problems == [
        f"{anywhere}: AIRoute apps/chat: metadata.name: is also defined in {eu_only}: "
        "each object may be defined once"
    ]
    # the first stays; the second never silently replaces it
    residency = inv.routes[("apps", "chat")].spec.residency
    assert residency is not None
    assert residency.locations == ["EU"]


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    path = write(tmp_path, "route.yaml", ROUTE.format(residency=""))
    _, problems = read(tmp_path, path)
    assert problems == []


def test_duplicate_providers_and_secrets_in_one_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "dup.yaml",
        """\
        apiVersion: v1
        kind: Secret
        metadata: {name: k, namespace: aiguillage-system}
        stringData: {apiKey: one}
        ---
        apiVersion: v1
        kind: Secret
        metadata: {name: k}
        stringData: {apiKey: two}
        """,
    )
    _, problems = read(path)
    assert problems == [
        f"{path}#2: Secret aiguillage-system/k: metadata.name: is also defined in {path}#1: "
        "each object may be defined once"
    ]


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ("{name: [a, b]}", "AIProvider: metadata.name: must be a string (got list)"),
        (
            "{name: ../../x}",
            "AIProvider: metadata.name: must be an RFC 1123 subdomain: lower-case letters, "
            "digits and '-' or '.', starting and ending with a letter or digit",
        ),
        ('{name: "a/b"}', "AIProvider: metadata.name: must be an RFC 1123 subdomain"),
        ('{name: "x\\0y"}', "AIProvider: metadata.name: must be an RFC 1123 subdomain"),
        (
            "{name: " + "a" * 254 + "}",
            "AIProvider: metadata.name: must be at most 253 characters (got 254)",
        ),
        ("{name: p, labels: a=b}", "AIProvider p: metadata.labels: must be a mapping of strings"),
        ("{name: p, generation: x}", "AIProvider p: metadata.generation: must be an integer"),
        ("[name, p]", "AIProvider: metadata: must be a mapping with a name"),
        ("{}", "AIProvider: metadata.name: is required"),
    ],
)
def test_metadata_of_the_wrong_shape_is_a_problem(
    tmp_path: Path, metadata: str, problem: str
) -> None:
    path = write(
        tmp_path,
        "p.yaml",
        f"apiVersion: aiguillage.dev/v1alpha1\nkind: AIProvider\nmetadata: {metadata}\n",
    )
    inv, problems = read(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: {problem}")
    assert inv.providers == {}


def test_namespaces_must_be_dns_labels(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "r.yaml",
        ROUTE.format(residency="").replace("namespace: apps", "namespace: 5"),
    )
    _, problems = read(path)
    assert problems == [f"{path}: AIRoute chat: metadata.namespace: must be a string (got int)"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("data: [a]", "data: must be a mapping of keys to strings"),
        ("data: {apiKey: 5}", "data.apiKey: must be a string"),
        ("data: {apiKey: '%%%'}", "data.apiKey: not base64"),
        ("stringData: {'a/b': x}", "stringData['a/b']: is not a Secret key"),
    ],
)
def test_secrets_of_the_wrong_shape(tmp_path: Path, body: str, problem: str) -> None:
    path = write(
        tmp_path, "s.yaml", f"apiVersion: v1\nkind: Secret\nmetadata: {{name: k}}\n{body}\n"
    )
    _, problems = read(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: Secret aiguillage-system/k: {problem}")


def test_other_kinds_are_skipped_whatever_their_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: [not, checked]}\n---\nkind: [x]\n",
    )
    assert read(path)[1] == []


def test_a_directory_with_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    write(tmp_path, "m/route.yaml", ROUTE.format(residency=""))
    (tmp_path / "m" / "loop").symlink_to(tmp_path / "m")
    (tmp_path / "m" / "dir.yaml").mkdir()  # a directory named like a manifest
    inv, problems = read(tmp_path)
    assert problems == []
    assert list(inv.routes) == [("apps", "chat")]


def test_unreadable_files_are_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "l1.yaml").symlink_to(tmp_path / "l2.yaml")
    (tmp_path / "l2.yaml").symlink_to(tmp_path / "l1.yaml")
    (tmp_path / "bin.yaml").write_bytes(b"kind: \xff\n")
    _, problems = read(tmp_path / "l1.yaml", tmp_path / "bin.yaml")
    assert problems == [
        f"{tmp_path / 'l1.yaml'}: cannot read: Too many levels of symbolic links",
        f"{tmp_path / 'bin.yaml'}: not UTF-8 text (invalid byte at offset 6)",
    ]
