"""``aiguillage scan FILE|-``: the data-protection detectors, offline, on a text or a request.

For teams testing their policies in CI: the input is a JSON request of one of the client
APIs (recognised from its fields, or named with ``--api``) or plain text; each finding is
printed with the field it is in, its offsets in that field, its category and detector, and
the value masked (first and last character) unless ``--show-values``. Exit code: 0 when
nothing was found, 1 when something was (or the request would be blocked), 2 on bad input.

``--rules FILE`` takes data-protection rules in YAML, in the shape of
``AIPolicy.spec.dataProtection`` (see :mod:`aiguillage.sidecar.privacy.rules`): the bare
mapping, ``{dataProtection: ...}``, or a whole manifest with ``spec.dataProtection``. The
action each finding would get is printed for the target given by ``--target-location`` and
``--target-jurisdiction`` (unknown when not given, which matches every ``not...`` rule),
and ``--apply`` prints the request as that target would receive it. Without rules every
built-in category is looked for, and audited.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml
from pydantic import ValidationError

from aiguillage.sidecar.privacy.engine import DataProtectionEngine, Located, RequestScan
from aiguillage.sidecar.privacy.errors import PersonalDataBlocked, RulesError
from aiguillage.sidecar.privacy.fields import JSON_STEP
from aiguillage.sidecar.privacy.fields import Path as FieldPath
from aiguillage.sidecar.privacy.rules import BUILTIN_CATEGORIES, DataProtectionRules

FOUND_NOTHING, FOUND, BAD_INPUT = 0, 1, 2
TEXT = "text"
# --api values: the client operation whose fields are scanned, or plain text.
APIS = {
    "chat": "chat.completions",
    "completions": "completions",
    "embeddings": "embeddings",
    "responses": "responses",
    "messages": "messages",
    TEXT: TEXT,
}
DESCRIPTIONS = {
    "chat.completions": "OpenAI chat completions request",
    "completions": "OpenAI completions request",
    "embeddings": "OpenAI embeddings request",
    "responses": "OpenAI Responses request",
    "messages": "Anthropic Messages request",
    TEXT: "plain text",
}
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result", "thinking", "document"})
_RESPONSES_KEYS = frozenset({"instructions", "previous_response_id", "reasoning", "text"})


class BadInput(Exception):
    """Input or rules that cannot be used; the message says what and where."""


def detect(body: Any) -> str:
    """The client API a decoded JSON request belongs to (BadInput if none)."""
    if not isinstance(body, dict):
        raise BadInput("a JSON request must be an object (use --api text to scan it as text)")
    if "messages" in body:
        if "system" in body or _has_anthropic_blocks(body["messages"]):
            return "messages"
        return "chat.completions"
    if "prompt" in body:
        return "completions"
    if "input" in body:
        items = body["input"]
        if _RESPONSES_KEYS & body.keys() or (
            isinstance(items, list) and any(isinstance(i, dict) for i in items)
        ):
            return "responses"
        return "embeddings"  # a string or strings: the same fields either way
    raise BadInput(
        "not a request of a known API: expected a messages, prompt or input field (or pass --api)"
    )


def _has_anthropic_blocks(messages: Any) -> bool:
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") in _ANTHROPIC_BLOCKS:
                return True
    return False


def load_rules(path: Path) -> DataProtectionRules:
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML: {exc}") from exc
    prefix = ""
    if isinstance(doc, dict) and isinstance(doc.get("spec"), dict):
        doc, prefix = doc["spec"].get("dataProtection"), "spec.dataProtection"
    elif isinstance(doc, dict) and "dataProtection" in doc:
        doc, prefix = doc["dataProtection"], "dataProtection"
    if not isinstance(doc, dict):
        raise BadInput(
            f"{path}: {prefix or 'the file'}: expected a mapping of data-protection rules"
        )
    try:
        return DataProtectionRules.model_validate(doc)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "")
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {where}: {message}" if where else f"{path}: {message}")
        raise BadInput("\n".join(lines)) from exc


def field_name(path: FieldPath) -> str:
    """``messages[2].tool_calls[0].function.arguments(json).to``."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif step == JSON_STEP:
            out += "(json)"
        else:
            out += f".{step}" if out else step
    return out


def mask(value: str) -> str:
    return value[0] + "…" + value[-1] if len(value) > 2 else "…"


def run(
    source: str,
    rules_file: Path | None,
    api: str | None,
    show_values: bool,
    apply: bool,
    location: str | None,
    jurisdiction: str | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        raw = _read(source)
        rules = load_rules(rules_file) if rules_file else _audit_everything()
        operation, body = _parse(raw, api)
        engine = DataProtectionEngine(rules)
    except (BadInput, RulesError) as exc:
        print(f"aiguillage scan: {exc}", file=err)
        return BAD_INPUT
    scan = engine.scan("messages" if operation == TEXT else operation, body)
    print(f"input: {DESCRIPTIONS[operation]}", file=out)
    if rules_file:
        target = f"location {location or 'unknown'}, jurisdiction {jurisdiction or 'unknown'}"
        print(f"rules: {rules_file}; target: {target}", file=out)
    else:
        print("rules: every built-in category, audited (give --rules for actions)", file=out)
    _print_findings(scan, operation, show_values, location, jurisdiction, out)
    try:
        protected = scan.apply(location=location, jurisdiction=jurisdiction)
    except PersonalDataBlocked as blocked:
        print(f"blocked: {blocked}", file=out)
        return FOUND
    if protected.summary:
        counts = ", ".join(
            f"{category} {action}: {n}"
            for category, actions in protected.summary.as_audit_dict().items()
            for action, n in actions.items()
        )
        print(f"{protected.summary.total} finding(s): {counts}", file=out)
    if apply:
        print("request as the target would receive it:", file=out)
        if operation == TEXT:
            print(protected.body["messages"][0]["content"], file=out)
        else:
            print(orjson.dumps(protected.body, option=orjson.OPT_INDENT_2).decode(), file=out)
    return FOUND if scan.located else FOUND_NOTHING


def _audit_everything() -> DataProtectionRules:
    return DataProtectionRules.model_validate(
        {"rules": [{"categories": list(BUILTIN_CATEGORIES), "action": "audit"}]}
    )


def _read(source: str) -> str:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise BadInput(f"{source}: cannot read: {exc.strerror}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{source}: not UTF-8 text (byte {exc.start})") from exc


def _parse(raw: str, api: str | None) -> tuple[str, dict[str, Any]]:
    """The operation and the body to scan; plain text becomes one user message."""
    operation = APIS[api] if api else None
    if operation != TEXT and (operation is not None or raw.lstrip().startswith("{")):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadInput(
                f"looks like JSON but does not parse: {exc} (--api text scans it as text)"
            ) from exc
        if operation is None:
            operation = detect(body)
        elif not isinstance(body, dict):
            raise BadInput("a JSON request must be an object")
        return operation, body
    return TEXT, {"messages": [{"role": "user", "content": raw}]}


def _print_findings(
    scan: RequestScan,
    operation: str,
    show_values: bool,
    location: str | None,
    jurisdiction: str | None,
    out: TextIO,
) -> None:
    if not scan.located:
        print("no personal data found", file=out)
        return
    rows = [("FIELD", "OFFSETS", "CATEGORY", "DETECTOR", "ACTION", "VALUE")]
    for each in sorted(scan.located, key=_in_body_order):
        rows.append(_row(scan, each, operation, show_values, location, jurisdiction))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        print("  ".join(cells).rstrip(), file=out)


def _in_body_order(each: Located) -> tuple[tuple[int, int, str], ...]:
    steps = tuple((0, s, "") if isinstance(s, int) else (1, 0, s) for s in each.slot.path)
    return (*steps, (2, each.finding.start, ""))


def _row(
    scan: RequestScan,
    each: Located,
    operation: str,
    show_values: bool,
    location: str | None,
    jurisdiction: str | None,
) -> tuple[str, str, str, str, str, str]:
    f = each.finding
    decided = scan.rules.action_for(f.category, location, jurisdiction)
    action = decided[0].value if decided else "-"
    field = TEXT if operation == TEXT else field_name(each.slot.path)
    value = each.value if show_values else mask(each.value)
    return (field, f"{f.start}-{f.end}", f.category, f.detector, action, value)
