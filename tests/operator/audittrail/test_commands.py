"""``aiguillage audit verify``: what it prints and its exit codes (0 holds, 1 broken, 2 bad
input), through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiguillage.cli import main
from aiguillage.operator.auditkeys import public_entry
from tests.operator.audittrail._trails import Keys, chain_lines, request, write


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys")


@pytest.fixture
def config_map(keys: Keys) -> Path:
    """The operator's ConfigMap of public keys, as ``kubectl get -o yaml`` saves it."""
    keys.private_file("team-a")
    keys.private_file("team-b")
    data = dict(public_entry(ns, pair) for ns, pair in keys.pairs.items())
    path = Path("audit-keys.yaml")
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "data": data}))
    return path


def two_chains(keys: Keys, final_b: bool = True) -> tuple[list[bytes], list[bytes]]:
    a = chain_lines(keys, [request(f"a{i}") for i in range(6)], name="team-a/app-1/aaaa")
    b = chain_lines(
        keys,
        [request(f"b{i}", "team-b") for i in range(7)],
        name="team-b/app-2/bbbb",
        namespace="team-b",
        final=final_b,
    )
    return a, b


def test_untouched_trails_hold(
    keys: Keys, config_map: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_chains(keys)
    write(Path("a.log"), [b"INFO starting", *a])
    write(Path("b.log"), b)
    code, out, _ = run(
        "audit", "verify", "b.log", "a.log", "--public-key", str(config_map), capsys=capsys
    )
    assert code == 0
    assert out.splitlines() == [
        "read 2 file(s): 17 chained line(s) of 2 chain(s), 1 other line(s) skipped "
        "(first: a.log:1)",
        "ok       team-a/app-1/aaaa  seq 1..8: 6 record(s), 2 checkpoint(s), sealed to the end, "
        "stopped cleanly",
        "ok       team-b/app-2/bbbb  seq 1..9: 7 record(s), 2 checkpoint(s), sealed to the end, "
        "stopped cleanly",
        "HOLDS: 2 chain(s) intact, 0 with warnings, 0 broken",
    ]


def test_a_broken_chain_exits_1_and_names_the_first_broken_link(
    keys: Keys, config_map: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_chains(keys)
    del b[2]
    write(Path("a.log"), a)
    write(Path("b.log"), b)
    code, out, _ = run(
        "audit", "verify", "a.log", "b.log", "--public-key", str(config_map), capsys=capsys
    )
    assert code == 1
    assert out.splitlines()[2:] == [
        "BROKEN   team-b/app-2/bbbb  seq 1..9: 6 record(s), 2 checkpoint(s)",
        "                            deleted: seq 3 missing between seq 2 (b.log:2) and "
        "seq 4 (b.log:3)",
        "BROKEN: 1 chain(s) intact, 0 with warnings, 1 broken",
    ]


def test_unsealed_records_warn_and_strict_fails(
    keys: Keys, config_map: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = two_chains(keys, final_b=False)
    write(Path("all.log"), [*a, *b])
    code, out, _ = run("audit", "verify", "all.log", "--public-key", str(config_map), capsys=capsys)
    assert code == 0
    assert (
        "warning  team-b/app-2/bbbb  seq 1..8: 7 record(s), 1 checkpoint(s), sealed to seq 6" in out
    )
    assert "warning: 2 record(s) after the last checkpoint (seq 6) are not sealed yet" in out
    code, out, _ = run(
        "audit", "verify", "all.log", "--public-key", str(config_map), "--strict", capsys=capsys
    )
    assert code == 1
    assert out.splitlines()[-1] == (
        "BROKEN: 1 chain(s) intact, 1 with warnings, 0 broken (--strict: warnings fail)"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["x.log"], "error: no --public-key given: checkpoint signatures cannot be checked"),
        (["missing.log", "--chains-only"], "error: missing.log: cannot be read"),
        (["x.log", "--public-key", "nokeys"], "error: --public-key nokeys: cannot be read"),
        (
            ["notes.txt", "--chains-only"],
            "error: no audit line in 1 file(s) (2 other line(s) skipped)",
        ),
    ],
)
def test_bad_input_exits_2(
    keys: Keys, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write(Path("x.log"), chain_lines(keys, [request("r")]))
    Path("notes.txt").write_text("hello\nworld\n")
    code, out, err = run("audit", "verify", *argv, capsys=capsys)
    assert code == 2
    assert out == ""
    assert err.startswith(message)


def test_chains_only_checks_links_without_keys(capsys: pytest.CaptureFixture[str]) -> None:
    write(Path("x.log"), chain_lines(None, [request(f"r{i}") for i in range(3)]))
    code, out, _ = run("audit", "verify", "x.log", "--chains-only", capsys=capsys)
    assert code == 0
    assert "ok       team-a/app-1/0001  seq 1..4" in out
