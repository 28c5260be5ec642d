"""``keys.py``: public keys from PEM files, directories and the operator's ConfigMap."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from aiguillage.operator.auditkeys import new_key_pair, public_entry
from aiguillage.operator.audittrail.keys import BadKeys, load


def config_map(entries: dict[str, str]) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aiguillage-audit-keys", "namespace": "aiguillage-system"},
        "data": entries,
    }


def test_a_config_map_saved_as_yaml_gives_keys_with_their_namespace(tmp_path: Path) -> None:
    a, b = new_key_pair(), new_key_pair()
    path = tmp_path / "keys.yaml"
    path.write_text(
        yaml.safe_dump(config_map(dict([public_entry("team-a", a), public_entry("team-b", b)])))
    )
    ring = load([path])
    assert {kid: key.namespace for kid, key in ring.items()} == {
        a.key_id: "team-a",
        b.key_id: "team-b",
    }


def test_a_list_of_config_maps_as_json(tmp_path: Path) -> None:
    pair = new_key_pair()
    path = tmp_path / "keys.json"
    path.write_bytes(
        orjson.dumps({"kind": "List", "items": [config_map(dict([public_entry("x", pair)]))]})
    )
    assert list(load([path])) == [pair.key_id]


def test_pem_files_and_a_directory(tmp_path: Path) -> None:
    a, b, c = new_key_pair(), new_key_pair(), new_key_pair()
    (tmp_path / "platform.pem").write_bytes(a.public_pem + b.public_pem)  # two in one file
    folder = tmp_path / "mounted"
    folder.mkdir()
    name, pem = public_entry("team-c", c)
    (folder / name).write_text(pem)
    (folder / "README").write_text("not a key")
    ring = load([tmp_path / "platform.pem", folder])
    assert {kid: key.namespace for kid, key in ring.items()} == {
        a.key_id: None,
        b.key_id: None,
        c.key_id: "team-c",
    }


def test_a_name_that_lies_about_the_key_id_is_refused(tmp_path: Path) -> None:
    a, b = new_key_pair(), new_key_pair()
    path = tmp_path / f"team-a.{b.key_id}.pem"
    path.write_bytes(a.public_pem)
    with pytest.raises(
        BadKeys, match=f"named for key id {b.key_id}, but the key's id is {a.key_id}"
    ):
        load([path])


def test_one_key_given_for_two_namespaces_is_refused(tmp_path: Path) -> None:
    pair = new_key_pair()
    for ns in ("team-a", "team-b"):
        name, pem = public_entry(ns, pair)
        (tmp_path / name).write_text(pem)
    with pytest.raises(BadKeys, match="a key belongs to one namespace"):
        load([tmp_path])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n",
            "not a readable PEM",
        ),
        ("kind: Secret\ndata: {}\n", "item 0 is not a ConfigMap"),
        ("kind: ConfigMap\ndata: {a.pem: 3}\n", "data.a.pem is not a string"),
        ("kind: ConfigMap\ndata: {a.pem: hello}\n", "no PEM public key"),
        ("kind: ConfigMap\ndata: {}\n", "no public key in it"),
        ("a: [unclosed\n", "neither PEM nor a ConfigMap"),
    ],
)
def test_unusable_key_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(content)
    with pytest.raises(BadKeys, match=message):
        load([path])


def test_an_rsa_public_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    path = tmp_path / "rsa.pem"
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(BadKeys, match="not an Ed25519 public key"):
        load([path])


def test_missing_and_empty_places(tmp_path: Path) -> None:
    with pytest.raises(BadKeys, match="cannot be read"):
        load([tmp_path / "nope.pem"])
    with pytest.raises(BadKeys, match=r"holds no \*.pem or \*.pub file"):
        load([tmp_path])
