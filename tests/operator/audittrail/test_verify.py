"""``verify.py``: every kind of tampering is caught and named at its first broken link, and
untouched trails hold, in whatever order and interleaving their lines arrive."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from aiguillage.operator.audittrail.keys import KeyRing
from aiguillage.operator.audittrail.keys import load as load_keys
from aiguillage.operator.audittrail.lines import read
from aiguillage.operator.audittrail.verify import Verification, verify
from tests.operator.audittrail._trails import Keys, chain_lines, request, write

# 12 records, a checkpoint every 5: seq 1-5 records, 6 checkpoint, 7-11 records,
# 12 checkpoint, 13-14 records, 15 final checkpoint. Line n of the file is seq n.
RECORDS = 12


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are named relative to the test's directory, as an auditor would give them."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    return Keys(tmp_path / "keys")


@pytest.fixture
def lines(keys: Keys) -> list[bytes]:
    return chain_lines(keys, [request(f"r{i}") for i in range(RECORDS)])


def check(
    tmp_path: Path,
    keys: Keys | KeyRing,
    *files: list[bytes],
    require_signatures: bool = True,
) -> Verification:
    paths = [write(Path(f"audit-{i}.log"), f) for i, f in enumerate(files)]
    ring = load_keys([keys.public_dir]) if isinstance(keys, Keys) else keys
    return verify(read(paths), ring, require_signatures=require_signatures)


def only_break(result: Verification) -> tuple[str, int, str]:
    (chain,) = result.chains
    assert chain.broken is not None, chain.warnings
    assert not result.holds
    return chain.broken.kind, chain.broken.seq, chain.broken.message


def test_an_untouched_trail_holds(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    result = check(tmp_path, keys, lines)
    (chain,) = result.chains
    assert result.holds
    assert (chain.status, chain.records, chain.checkpoints) == ("ok", 12, 3)
    assert (chain.sealed_to, chain.final, chain.warnings) == (15, True, [])


def test_an_edited_record(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    lines[2] = lines[2].replace(b'"location":"FR"', b'"location":"US"')
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("edited", 3)
    assert message == (
        "edited: seq 3 (audit-0.log:3) does not hash to the prev recorded by seq 4 "
        "(audit-0.log:4): one of the two lines was changed"
    )


def test_an_edited_record_after_a_checkpoint(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    lines[9] = lines[9].replace(b'"outputTokens":20', b'"outputTokens":2')
    assert only_break(check(tmp_path, keys, lines))[:2] == ("edited", 10)


def test_a_deleted_record(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    del lines[7]  # seq 8
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("deleted", 8)
    assert message == (
        "deleted: seq 8 missing between seq 7 (audit-0.log:7) and seq 9 (audit-0.log:8)"
    )


def test_several_deleted_records_and_a_checkpoint(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    del lines[3:8]  # seq 4..8, checkpoint 6 among them
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("deleted", 4)
    assert "seq 4..8 missing" in message


def test_a_record_cut_into_bad_json_is_named_as_damaged(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    lines[4] = lines[4][:100]
    kind, _, message = only_break(check(tmp_path, keys, lines))
    assert kind == "deleted"
    assert "damaged chain line(s) at audit-0.log:5" in message


def test_an_inserted_record_with_a_taken_seq(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    forged = lines[3].replace(b'"requestId":"r3"', b'"requestId":"forged"')
    lines.insert(4, forged)  # a second seq 4, at line 5
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("inserted", 4)
    assert "two different lines have seq 4" in message
    assert "links to audit-0.log:4, so audit-0.log:5 is not part of the chain" in message


def test_an_inserted_record_with_the_following_renumbered(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    """A forger adds a record after seq 4, linked to it, and shifts every later seq by one
    (without the key, the later links cannot be redone to match)."""
    forged = lines[4].replace(b'"requestId":"r4"', b'"requestId":"forged"')
    shifted = [
        line.replace(b'"seq":%d,' % n, b'"seq":%d,' % (n + 1))
        for n, line in enumerate(lines[4:], start=5)
    ]
    tampered = [*lines[:4], forged, *shifted]
    kind, seq, message = only_break(check(tmp_path, keys, tampered))
    assert (kind, seq) == ("inserted", 5)
    assert "seq 6 (audit-0.log:6) links to seq 4 (audit-0.log:4)" in message
    assert "seq 5 (audit-0.log:5) are not part of the chain" in message


def test_reordered_records(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    lines[7], lines[8] = lines[8], lines[7]
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("reordered", 8)
    assert "seq 8 (audit-0.log:9) comes after seq 9 (audit-0.log:8) in the same file" in message


def test_an_edited_seq_field(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    lines[8] = lines[8].replace(b'"seq":9,', b'"seq":10,')
    del lines[9]  # so that seq 10 is not there twice
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("edited", 10)
    assert "its seq field was edited" in message


def test_a_missing_tail_sealed_by_a_checkpoint_copy(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    """The trail's file lost its end (seq 13-15); the checkpoint copies (the sidecar's
    stderr) still have the final checkpoint, which seals seq 13 and 14."""
    copies = [line for line in lines if b'"kind":"checkpoint"' in line]
    kind, seq, message = only_break(check(tmp_path, keys, lines[:12], copies))
    assert (kind, seq) == ("missing_tail", 13)
    assert "seq 13..14, sealed by the checkpoint seq 15 (audit-1.log:3), are gone" in message
    assert "the chain's lines end at seq 12 (audit-0.log:12)" in message


def test_an_intact_trail_with_its_checkpoint_copies_holds(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    copies = [line for line in lines if b'"kind":"checkpoint"' in line]
    assert check(tmp_path, keys, copies, lines).holds  # copies first: any order


def test_records_after_the_last_checkpoint_are_a_warning(tmp_path: Path, keys: Keys) -> None:
    running = chain_lines(keys, [request(f"r{i}") for i in range(RECORDS)], final=False)
    result = check(tmp_path, keys, running)
    (chain,) = result.chains
    assert result.holds
    assert chain.status == "warning"
    assert chain.warnings == [
        "2 record(s) after the last checkpoint (seq 12) are not sealed yet (the sidecar is "
        "running, or stopped before its next checkpoint)"
    ]
    result.strict = True
    assert not result.holds


def test_an_edited_checkpoint(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    lines[11] = lines[11].replace(b'"records":10', b'"records":9')
    kind, seq, message = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("edited", 12)
    assert "checkpoint seq 12 (audit-0.log:12): its signature does not verify" in message


def test_a_forged_signature(tmp_path: Path, keys: Keys, lines: list[bytes]) -> None:
    head, _, _ = lines[5].rpartition(b',"sig":')
    lines[5] = head + b',"sig":"' + b"A" * 86 + b'=="}'
    assert only_break(check(tmp_path, keys, lines))[:2] == ("edited", 6)


def test_a_checkpoint_signed_with_another_key(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    others = Keys(tmp_path / "other-keys")
    others.private_file("team-a")
    kind, seq, message = only_break(check(tmp_path, others, lines))
    assert (kind, seq) == ("unknown_key", 6)
    assert "not among the public keys given" in message


def test_records_claiming_another_namespace(tmp_path: Path, keys: Keys) -> None:
    """A pod of team-a can read team-a's key, and sign records saying they are team-b's."""
    keys.private_file("team-b")
    forged = chain_lines(
        keys, [request("r0", "team-b"), request("r1", "team-b")], namespace="team-a"
    )
    kind, _, message = only_break(check(tmp_path, keys, forged))
    assert kind == "wrong_namespace"
    assert "claim namespace team-b, but it is signed with the key of namespace team-a" in message


def test_unsigned_checkpoints_fail_unless_only_chains_are_checked(tmp_path: Path) -> None:
    unsigned = chain_lines(None, [request(f"r{i}") for i in range(7)])
    result = check(tmp_path, {}, unsigned)
    kind, seq, message = only_break(result)
    assert (kind, seq) == ("unsigned", 6)
    assert "is not signed" in message
    assert check(tmp_path, {}, unsigned, require_signatures=False).holds


def test_chains_only_still_catches_an_edit(tmp_path: Path) -> None:
    unsigned = chain_lines(None, [request(f"r{i}") for i in range(7)])
    unsigned[1] = unsigned[1].replace(b'"costEur":"0.000130"', b'"costEur":"0.000001"')
    result = check(tmp_path, {}, unsigned, require_signatures=False)
    assert only_break(result)[:2] == ("edited", 2)


def test_a_trail_without_its_beginning_is_a_warning(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    (chain,) = check(tmp_path, keys, lines[6:]).chains
    assert chain.status == "warning"
    assert chain.warnings == [
        "the input starts at seq 7: seq 1..6 are not in it (log retention?) and were not checked"
    ]


def test_a_first_line_that_does_not_start_a_chain(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    lines[0] = lines[0].replace(b'"prev":"0000', b'"prev":"1000')
    kind, seq, _ = only_break(check(tmp_path, keys, lines))
    assert (kind, seq) == ("edited", 1)


def test_lines_delivered_twice_are_counted_once(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    twice = [*lines[:4], lines[3], *lines[4:]]
    result = check(tmp_path, keys, twice)
    (chain,) = result.chains
    assert result.holds
    assert chain.records == RECORDS
    assert chain.warnings == [
        "1 record line(s) appear more than once, byte for byte (a log pipeline delivering "
        "twice): each is counted once"
    ]


def test_many_chains_interleaved_across_files_in_any_order(tmp_path: Path, keys: Keys) -> None:
    """Four sidecars in two namespaces; their lines shuffled into three files (each file
    keeping every chain's order, as a log pipeline does), the files given in any order."""
    rng = random.Random(10)
    chains = [
        chain_lines(
            keys,
            [request(f"{n}-{i}", ns) for i in range(rng.randint(3, 30))],
            name=f"{ns}/app-{n}/{n:04x}",
            namespace=ns,
            every=4,
        )
        for n, ns in enumerate(["team-a", "team-a", "team-b", "team-c"])
    ]
    files: list[list[bytes]] = [[], [], []]
    for lines in chains:
        # Each chain is cut into consecutive pieces that land in different files.
        cut = sorted(rng.sample(range(1, len(lines)), 2))
        pieces = [lines[: cut[0]], lines[cut[0] : cut[1]], lines[cut[1] :]]
        for piece, target in zip(pieces, rng.sample(range(3), 3), strict=True):
            files[target] = _merge(files[target], piece, rng)
    files.reverse()
    result = check(tmp_path, keys, *files)
    assert [c.status for c in result.chains] == ["ok"] * 4
    assert result.holds


def _merge(a: list[bytes], b: list[bytes], rng: random.Random) -> list[bytes]:
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        if j >= len(b) or (i < len(a) and rng.random() < 0.5):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def test_the_first_break_of_each_chain_is_reported_and_others_hold(
    tmp_path: Path, keys: Keys
) -> None:
    a = chain_lines(keys, [request(f"a{i}") for i in range(8)], name="team-a/a/1")
    b = chain_lines(keys, [request(f"b{i}") for i in range(8)], name="team-a/b/2")
    del a[2]
    a[5] = a[5].replace(b"mistral", b"gpt-4o")  # a second tampering, later in the chain
    result = check(tmp_path, keys, _merge(a, b, random.Random(1)))
    broken = {c.name: c.broken for c in result.chains}
    assert broken["team-a/b/2"] is None
    first = broken["team-a/a/1"]
    assert first is not None
    assert (first.kind, first.seq) == ("deleted", 3)


def test_checkpoint_copies_anywhere_in_the_same_file_are_not_a_reordering(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    """A file holding the trail and the sidecar's stderr (with the checkpoint copies) may
    have a copy before the records it seals: two streams, each in order."""
    copies = [line for line in lines if b'"kind":"checkpoint"' in line]
    assert check(tmp_path, keys, [*copies, *lines]).holds


def test_order_is_checked_per_container_stream(
    tmp_path: Path, keys: Keys, lines: list[bytes]
) -> None:
    """In a kubelet log file, stdout and stderr lines keep their own order, not each
    other's: records that fell back to stderr may come earlier than older stdout ones."""
    stamp = b"2026-01-01T00:00:00Z"
    cri = [stamp + b" stdout F " + line for line in lines[:6]]
    cri.insert(0, stamp + b" stderr F " + lines[6])  # written later, read earlier
    cri += [stamp + b" stdout F " + line for line in lines[7:]]
    assert check(tmp_path, keys, cri).holds
    swapped = list(cri)
    swapped[2], swapped[3] = swapped[3], swapped[2]  # two stdout records: reordered
    assert only_break(check(tmp_path, keys, swapped))[0] == "reordered"
