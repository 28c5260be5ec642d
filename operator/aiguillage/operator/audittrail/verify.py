"""Check every chain of an audit trail and name the first broken link of each.

The lines of one chain (one sidecar process, see :mod:`aiguillage.sidecar.auditchain`) may
come from several files in any order, interleaved with other chains. They are put in
``seq`` order and walked; the first thing that does not hold is the chain's break, named by
what most simply explains it:

=================  ==========================================================================
``edited``         a line's bytes changed: the next line's ``prev`` is not its hash (or a
                   checkpoint's signature fails, or its ``seq`` field was changed)
``deleted``        ``seq`` numbers are missing between two lines
``inserted``       a line the chain does not link: a second line with the same ``seq``, or
                   lines a later line's ``prev`` skips over
``reordered``      lines of one file out of ``seq`` order, or a ``prev`` naming a later line
``missing_tail``   the lines before a checkpoint, which it seals, are gone at the trail's end
``unsigned``       a checkpoint without signature (the sidecar had no key mounted)
``unknown_key``    a checkpoint signed with a key not among the public keys given
``wrong_namespace`` records claiming a namespace other than the one whose key signs them
=================  ==========================================================================

Not breaks, but warnings: records after the last checkpoint (not sealed yet: the sidecar may
still be running, or was killed before its next checkpoint; anyone able to write the log
could have added or changed them), a chain whose first lines are not in the input (log
retention), and lines delivered twice byte for byte (a log pipeline's at-least-once
delivery; counted once). ``strict`` turns warnings into failures.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from aiguillage.operator.audittrail.keys import KeyRing
from aiguillage.operator.audittrail.lines import ChainedLine, Trail, Where
from aiguillage.sidecar.auditchain import GENESIS, signed_part

_GENESIS = bytes.fromhex(GENESIS)


@dataclass(frozen=True)
class Break:
    kind: str  # see the module docstring
    seq: int  # where in the chain (the lowest seq involved)
    message: str


@dataclass
class ChainResult:
    name: str
    lines: int = 0  # distinct lines
    records: int = 0
    checkpoints: int = 0
    first_seq: int = 0
    last_seq: int = 0
    sealed_to: int = 0  # seq of the last checkpoint whose signature holds (0: none)
    final: bool = False  # ended by the checkpoint of a clean stop
    unsealed: int = 0  # records after the last good checkpoint
    namespaces: set[str] = field(default_factory=set)
    broken: Break | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.broken is not None:
            return "broken"
        return "warning" if self.warnings else "ok"


@dataclass
class Verification:
    trail: Trail
    chains: list[ChainResult]
    strict: bool = False

    @property
    def broken(self) -> list[ChainResult]:
        return [c for c in self.chains if c.broken is not None]

    @property
    def warned(self) -> list[ChainResult]:
        return [c for c in self.chains if c.broken is None and c.warnings]

    @property
    def holds(self) -> bool:
        """Nothing broken (and, when strict, nothing to warn about)."""
        return not self.broken and not (self.strict and self.warned)


def verify(
    trail: Trail, keys: KeyRing, require_signatures: bool = True, strict: bool = False
) -> Verification:
    chains = [
        _Walk(name, lines, keys, require_signatures, trail.damaged).run()
        for name, lines in sorted(trail.chains().items())
    ]
    return Verification(trail, chains, strict)


def distinct(lines: list[ChainedLine]) -> list[ChainedLine]:
    """Lines with identical bytes counted once (first occurrence kept)."""
    seen: set[bytes] = set()
    out = []
    for line in lines:
        if line.digest not in seen:
            seen.add(line.digest)
            out.append(line)
    return out


class _Walk:
    def __init__(
        self,
        name: str,
        lines: list[ChainedLine],
        keys: KeyRing,
        require_signatures: bool,
        damaged: list[Where],
    ) -> None:
        self.keys = keys
        self.require_signatures = require_signatures
        self.damaged = damaged
        self.result = ChainResult(name)
        unique = distinct(lines)
        twice = sum(1 for line in lines if not line.checkpoint) - sum(
            1 for line in unique if not line.checkpoint
        )
        if twice:
            self.result.warnings.append(
                f"{twice} record line(s) appear more than once, byte for byte (a log "
                "pipeline delivering twice): each is counted once"
            )
        self.input_order = unique
        self.ordered = sorted(unique, key=lambda line: line.seq)  # stable: input order kept
        self.by_hash = {line.digest: line for line in self.ordered}

    def run(self) -> ChainResult:
        res = self.result
        res.lines = len(self.ordered)
        res.records = sum(1 for line in self.ordered if not line.checkpoint)
        res.checkpoints = res.lines - res.records
        res.first_seq, res.last_seq = self.ordered[0].seq, self.ordered[-1].seq
        res.namespaces = {line.namespace for line in self.ordered if line.namespace}
        breaks = [b for b in (self._file_order(), self._links()) if b is not None]
        if breaks:
            res.broken = min(breaks, key=lambda b: b.seq)
        self._seal_state()
        return res

    # -- what can break --------------------------------------------------------------------

    def _file_order(self) -> Break | None:
        """Within one file (and container stream), a sidecar's records are in seq order.
        Checkpoints are left out: their copies come from another stream (stderr)."""
        last: dict[tuple[str, str], ChainedLine] = {}
        found: Break | None = None
        for line in self.input_order:
            if line.checkpoint:
                continue
            place = (line.where.file, line.where.stream)
            before = last.get(place)
            if before is not None and line.seq < before.seq:
                brk = Break(
                    "reordered",
                    line.seq,
                    f"records reordered: seq {line.seq} ({line.where}) comes after seq "
                    f"{before.seq} ({before.where}) in the same file",
                )
                if found is None or brk.seq < found.seq:
                    found = brk
            if before is None or line.seq > before.seq:
                last[place] = line
        return found

    def _links(self) -> Break | None:
        ordered = self.ordered
        first = ordered[0]
        if first.seq == 1:
            if first.prev != _GENESIS:
                return Break(
                    "edited",
                    1,
                    f"seq 1 ({first.where}) does not start a chain: its prev is not the "
                    "chain's starting value (the line was edited)",
                )
        else:
            self.result.warnings.append(
                f"the input starts at seq {first.seq}: seq 1..{first.seq - 1} are not in it "
                "(log retention?) and were not checked"
            )
        unsealed_namespaces: set[str] = set()
        for index, line in enumerate(ordered):
            if index:
                before = ordered[index - 1]
                brk = self._link(before, line, index)
                if brk is not None:
                    return brk
            if line.checkpoint:
                brk = self._signature(line, unsealed_namespaces)
                if brk is not None:
                    return brk
                unsealed_namespaces = set()
            elif line.namespace:
                unsealed_namespaces.add(line.namespace)
        return None

    def _link(self, before: ChainedLine, line: ChainedLine, index: int) -> Break | None:
        if line.seq == before.seq:
            return self._same_seq(before, line, index)
        if line.seq > before.seq + 1:
            if line.prev == before.digest:
                return Break(
                    "edited",
                    line.seq,
                    f"seq {line.seq} ({line.where}) links to seq {before.seq} "
                    f"({before.where}) but says seq {line.seq}: its seq field was edited",
                )
            return self._gap(before, line, index)
        if line.prev == before.digest:
            return None
        target = self.by_hash.get(line.prev)
        if target is not None and target.seq < before.seq:
            return Break(
                "inserted",
                target.seq + 1,
                f"inserted: seq {line.seq} ({line.where}) links to seq {target.seq} "
                f"({target.where}), so {_span(target.seq + 1, before.seq)} "
                f"({self._where_of(target.seq + 1, before.seq)}) are not part of the chain",
            )
        if target is not None and target.seq > line.seq:
            return Break(
                "reordered",
                line.seq,
                f"reordered: seq {line.seq} ({line.where}) links to seq {target.seq} "
                f"({target.where}), which comes after it",
            )
        return Break(
            "edited",
            before.seq,
            f"edited: seq {before.seq} ({before.where}) does not hash to the prev recorded "
            f"by seq {line.seq} ({line.where}): one of the two lines was changed",
        )

    def _same_seq(self, before: ChainedLine, line: ChainedLine, index: int) -> Break:
        following = next((n for n in self.ordered[index:] if n.seq == line.seq + 1), None)
        pair = f"({before.where} and {line.where})"
        if following is not None and following.prev in (before.digest, line.digest):
            genuine, extra = (before, line) if following.prev == before.digest else (line, before)
            return Break(
                "inserted",
                line.seq,
                f"inserted: two different lines have seq {line.seq} {pair}; seq "
                f"{following.seq} links to {genuine.where}, so {extra.where} is not part of "
                "the chain",
            )
        return Break(
            "inserted",
            line.seq,
            f"inserted or edited: two different lines have seq {line.seq} {pair}, and no "
            "line links to either",
        )

    def _gap(self, before: ChainedLine, line: ChainedLine, index: int) -> Break:
        missing = _span(before.seq + 1, line.seq - 1)
        damaged = [str(w) for w in self.damaged if w.file in (before.where.file, line.where.file)]
        hint = f"; damaged chain line(s) at {', '.join(damaged[:3])}" if damaged else ""
        if line.checkpoint and all(n.checkpoint for n in self.ordered[index:]):
            return Break(
                "missing_tail",
                before.seq + 1,
                f"missing tail: {missing}, sealed by the checkpoint seq {line.seq} "
                f"({line.where}), are gone; the chain's lines end at seq {before.seq} "
                f"({before.where}){hint}",
            )
        return Break(
            "deleted",
            before.seq + 1,
            f"deleted: {missing} missing between seq {before.seq} ({before.where}) and seq "
            f"{line.seq} ({line.where}){hint}",
        )

    def _signature(self, line: ChainedLine, namespaces: set[str]) -> Break | None:
        obj, raw = line.obj or {}, line.raw or b""  # both kept for every checkpoint
        kid, sig = obj.get("keyId"), obj.get("sig")
        if kid is None or sig is None:
            if not self.require_signatures:
                self._sealed(line)  # --chains-only: the checkpoint marks, it cannot prove
                return None
            return Break(
                "unsigned",
                line.seq,
                f"checkpoint seq {line.seq} ({line.where}) is not signed (the sidecar had "
                "no signing key mounted): anyone able to write the log could rewrite this "
                "chain (--chains-only checks the hash links alone)",
            )
        if not self.require_signatures and not self.keys:
            self._sealed(line)
            return None
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            return Break(
                "unknown_key",
                line.seq,
                f"checkpoint seq {line.seq} ({line.where}) is signed with key {kid}, which is "
                "not among the public keys given",
            )
        message = signed_part(raw)
        try:
            signature = base64.b64decode(sig, validate=True) if isinstance(sig, str) else b""
        except (binascii.Error, ValueError):
            signature = b""
        if message is None or not key.verifies(signature, message):
            return Break(
                "edited",
                line.seq,
                f"checkpoint seq {line.seq} ({line.where}): its signature does not verify "
                f"with key {kid} ({key.source}): the checkpoint was edited or forged",
            )
        strangers = sorted(ns for ns in namespaces if key.namespace and ns != key.namespace)
        if strangers:
            return Break(
                "wrong_namespace",
                line.seq,
                f"records sealed by checkpoint seq {line.seq} ({line.where}) claim namespace "
                f"{', '.join(strangers)}, but it is signed with the key of namespace "
                f"{key.namespace}",
            )
        self._sealed(line)
        return None

    def _sealed(self, line: ChainedLine) -> None:
        self.result.sealed_to = line.seq
        self.result.final = line.obj is not None and line.obj.get("final") is True

    def _seal_state(self) -> None:
        res = self.result
        if res.broken is not None:
            return
        res.unsealed = sum(
            1 for line in self.ordered if not line.checkpoint and line.seq > res.sealed_to
        )
        if res.unsealed:
            after = f"the last checkpoint (seq {res.sealed_to})" if res.sealed_to else "start"
            res.warnings.append(
                f"{res.unsealed} record(s) after {after} are not sealed yet (the sidecar is "
                "running, or stopped before its next checkpoint)"
            )

    def _where_of(self, first: int, last: int) -> str:
        wheres = [str(n.where) for n in self.ordered if first <= n.seq <= last]
        return ", ".join(wheres[:3]) + (" ..." if len(wheres) > 3 else "")


def _span(first: int, last: int) -> str:
    return f"seq {first}" if first == last else f"seq {first}..{last}"
