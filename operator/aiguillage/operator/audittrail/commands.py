"""``aiguillage audit verify`` and ``aiguillage audit report``: input, output and exit codes.

Exit codes of both: 0 when every chain holds, 1 when one is broken (or, with ``--strict``,
has warnings), 2 on bad input (a file that cannot be read, unusable keys, no keys without
``--chains-only``, no audit line at all). ``report`` writes its files whatever the
verification found (the result is at the top of the page) and exits like ``verify``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from aiguillage.operator.audittrail import keys as keyfiles
from aiguillage.operator.audittrail.lines import BadTrail, read
from aiguillage.operator.audittrail.verify import ChainResult, Verification, verify

HOLDS, BROKEN, BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Input that cannot be verified; the message says what and where."""


def load_and_verify(
    files: list[Path], public_keys: list[Path], chains_only: bool, strict: bool
) -> Verification:
    """Read the trail and the keys, check every chain (BadInput for unusable input)."""
    if not files:
        raise BadInput("no audit file given")
    if not public_keys and not chains_only:
        raise BadInput(
            "no --public-key given: checkpoint signatures cannot be checked (give the public "
            "keys, e.g. the operator's ConfigMap aiguillage-audit-keys saved with kubectl get "
            "-o yaml, or pass --chains-only to check the hash links alone)"
        )
    try:
        ring = keyfiles.load(public_keys)
    except keyfiles.BadKeys as exc:
        raise BadInput(f"--public-key {exc}") from None
    try:
        trail = read(files)
    except BadTrail as exc:
        raise BadInput(str(exc)) from None
    if not trail.chained and not trail.unchained:
        raise BadInput(
            f"no audit line in {len(files)} file(s) ({trail.skipped} other line(s) skipped): "
            "expected the JSON lines of aiguillage sidecars"
        )
    return verify(trail, ring, require_signatures=not chains_only, strict=strict)


def exit_code(verification: Verification) -> int:
    return HOLDS if verification.holds else BROKEN


def run_verify(files: list[Path], public_keys: list[Path], chains_only: bool, strict: bool) -> int:
    try:
        verification = load_and_verify(files, public_keys, chains_only, strict)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    print_verification(verification, sys.stdout)
    return exit_code(verification)


def summary_lines(verification: Verification) -> list[str]:
    """What was read and the overall result, for the terminal and the report's header."""
    trail = verification.trail
    chains = verification.chains
    read_line = (
        f"read {len(trail.files)} file(s): {len(trail.chained)} chained line(s) of "
        f"{len(chains)} chain(s)"
    )
    if trail.unchained:
        read_line += f", {trail.unchained} record(s) without chain fields"
    if trail.skipped:
        examples = ", ".join(str(w) for w in trail.skipped_examples)
        read_line += f", {trail.skipped} other line(s) skipped (first: {examples})"
    ok = sum(1 for c in chains if c.status == "ok")
    result = (
        f"{'HOLDS' if verification.holds else 'BROKEN'}: {ok} chain(s) intact, "
        f"{len(verification.warned)} with warnings, {len(verification.broken)} broken"
    )
    if trail.unchained:
        result += f"; {trail.unchained} record(s) cannot be verified (no chain)"
    if verification.strict and verification.warned and not verification.broken:
        result += " (--strict: warnings fail)"
    return [read_line, result]


def describe(chain: ChainResult) -> str:
    """One line about a chain: its extent, and how far it is sealed."""
    text = (
        f"seq {chain.first_seq}..{chain.last_seq}: {chain.records} record(s), "
        f"{chain.checkpoints} checkpoint(s)"
    )
    if chain.broken is not None:
        return text
    if chain.sealed_to and chain.sealed_to == chain.last_seq:
        text += ", sealed to the end" + (", stopped cleanly" if chain.final else "")
    elif chain.sealed_to:
        text += f", sealed to seq {chain.sealed_to}"
    else:
        text += ", no checkpoint yet"
    return text


def print_verification(verification: Verification, out: TextIO) -> None:
    first, result = summary_lines(verification)
    print(first, file=out)
    width = max((len(c.name) for c in verification.chains), default=0)
    for chain in verification.chains:
        label = {"ok": "ok", "warning": "warning", "broken": "BROKEN"}[chain.status]
        print(f"{label:<8} {chain.name:<{width}}  {describe(chain)}", file=out)
        if chain.broken is not None:
            print(f"{'':<8} {'':<{width}}  {chain.broken.message}", file=out)
        for warning in chain.warnings:
            print(f"{'':<8} {'':<{width}}  warning: {warning}", file=out)
    print(result, file=out)
