"""Residency: the rules (``residency.py``) and their enforcement on every request.

The property test is the main guarantee: whatever the route, the headers and the faults (hostile
providers included: redirects, garbage, oversized answers), no request ever reaches a provider
outside (route rule ∩ header rule), nor any host a provider points to, and the audit record says
exactly what the client got and which providers were asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiguillage.devtools.harness import LoopThread
from aiguillage.devtools.simulators.openai import OpenAISimulator
from aiguillage.sidecar.config import (
    CircuitBreaker,
    Provider,
    Residency,
    Retry,
    Route,
    SidecarConfig,
    SizeLimits,
    Target,
    Timeouts,
)
from aiguillage.sidecar.health import HealthBoard
from aiguillage.sidecar.loader import load
from aiguillage.sidecar.residency import (
    EEA,
    EU,
    ResidencyRule,
    UnknownRegionError,
    describe,
    expand,
)
from tests.sidecar._formats import ROWS, located
from tests.sidecar.conftest import (
    MESSAGES,
    Raw,
    RunningSidecar,
    StartSidecar,
    eu_target,
    provider_for,
    route,
    two_provider_config,
    us_target,
)

# -- the rules -----------------------------------------------------------------------------------


def test_expand_groups_and_codes() -> None:
    assert expand(["eu"]) == EU
    assert len(EU) == 27
    assert expand(["EEA"]) == EU | {"IS", "LI", "NO"}
    assert expand([" fr ", "ch"]) == {"FR", "CH"}
    assert expand([]) == frozenset()
    assert "GB" not in EU
    assert "CH" not in EEA


@pytest.mark.parametrize("bad", ["Europe", "F", "FRA", "1X", "", "É1"])
def test_expand_rejects_what_is_not_a_country_or_group(bad: str) -> None:
    with pytest.raises(UnknownRegionError, match="ISO 3166-1 alpha-2"):
        expand([bad])


def test_unrestricted_rule_allows_providers_without_residency_data() -> None:
    rule = ResidencyRule()
    assert rule.unrestricted
    assert rule.complies(None, None)
    assert rule.complies("US", "US")


def test_a_provider_without_data_complies_with_no_rule() -> None:
    rule = ResidencyRule.parse(["EU"])
    assert rule.violation(None, "FR") == "has no declared location"
    rule = ResidencyRule.parse(None, ["EU"])
    assert rule.violation("FR", None) == "has no declared jurisdiction"


def test_both_dimensions_must_comply() -> None:
    sovereign = ResidencyRule.parse(["EU"], ["EU"])
    assert sovereign.complies("FR", "FR")
    assert sovereign.complies("de", "ie")  # case does not matter
    assert sovereign.violation("IE", "US") == (
        "is under jurisdiction US, outside jurisdictions [EU]"
    )
    assert sovereign.violation("US", "FR") == "is located in US, outside locations [EU]"


def test_narrow_intersects_and_never_widens() -> None:
    route_rule = ResidencyRule.parse(["EU"], None, "route chat")
    header = ResidencyRule.parse(["FR", "US"], ["FR"], "request headers")
    both = route_rule.narrow(header)

    assert both.locations == {"FR"}
    assert both.jurisdictions == {"FR"}
    assert both.source == "route chat ∩ request headers"
    assert not both.complies("US", "FR")
    assert not both.complies("DE", "FR")
    # a rule narrowed by an unrestricted one is unchanged, either way round
    assert route_rule.narrow(ResidencyRule()).locations == EU
    assert ResidencyRule().narrow(route_rule).locations == EU


def test_disjoint_rules_allow_nothing_and_say_so() -> None:
    rule = ResidencyRule.parse(["EU"]).narrow(ResidencyRule.parse(["US"]))
    assert rule.locations == frozenset()
    assert not rule.complies("FR", "FR")
    assert "no country is allowed" in (rule.violation("FR", "FR") or "")


def test_describe_names_groups() -> None:
    assert describe(EU) == "[EU]"
    assert describe(EEA) == "[EEA]"
    assert describe(EU | {"CH"}) == "[EU, CH]"
    assert describe(frozenset({"US", "CA"})) == "[CA, US]"


def test_as_dict_is_sorted() -> None:
    assert ResidencyRule.parse(["FR", "DE"]).as_dict() == {
        "locations": ["DE", "FR"],
        "jurisdictions": None,
    }


# -- enforcement in the sidecar ------------------------------------------------------------------


@pytest.fixture
def us_first(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> RunningSidecar:
    """Route ``chat`` prefers openai-us and has no residency rule; ``eu-only`` is restricted
    to EU locations yet (wrongly) lists openai-us first."""
    return start_sidecar(
        two_provider_config(
            eu,
            us,
            route("chat", us_target(0), eu_target(1)),
            route(
                "eu-only",
                us_target(0),
                eu_target(1),
                residency=Residency(locations=EU),
            ),
        )
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_header_narrows_residency(
    stream: bool, us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    raw = us_first.client().chat.completions.with_raw_response.create(
        model="chat",
        messages=MESSAGES,
        stream=stream,
        extra_headers={"x-aiguillage-residency": "EU"},
    )
    if stream:
        list(raw.parse())

    assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
    assert raw.headers["x-aiguillage-location"] == "FR"
    assert raw.headers["x-aiguillage-attempts"] == "1"
    assert us.requests == []
    assert len(eu.requests) == 1
    record = us_first.audit_for(raw.headers["x-request-id"])
    assert record["residency"] == {"locations": sorted(EU), "jurisdictions": None}
    assert [(a["provider"], a["outcome"]) for a in record["attempts"]] == [
        ("openai-us", "skipped_residency"),
        ("mistral-eu", "ok"),
    ]
    assert record["attempts"][0]["detail"] == "is located in US, outside locations [EU]"


def test_jurisdiction_header_narrows(
    us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    raw = us_first.client().chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES, extra_headers={"x-aiguillage-jurisdiction": "FR, DE"}
    )

    assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
    assert us.requests == []


def test_without_header_the_unrestricted_route_uses_its_first_target(
    us_first: RunningSidecar, us: OpenAISimulator
) -> None:
    raw = us_first.client().chat.completions.with_raw_response.create(
        model="chat", messages=MESSAGES
    )
    assert raw.headers["x-aiguillage-provider"] == "openai-us"
    assert len(us.requests) == 1


def test_route_rule_is_enforced_without_any_header(
    us_first: RunningSidecar, us: OpenAISimulator
) -> None:
    raw = us_first.client().chat.completions.with_raw_response.create(
        model="eu-only", messages=MESSAGES
    )
    assert raw.headers["x-aiguillage-provider"] == "mistral-eu"
    assert us.requests == []


def test_headers_cannot_widen_a_restricted_route(
    us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    resp = us_first.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "eu-only", "messages": MESSAGES},
        headers={"x-aiguillage-residency": "US"},
    )
    assert resp.status == 503
    assert resp.json()["error"]["code"] == "no_compliant_target"

    resp = us_first.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "eu-only", "messages": MESSAGES},
        headers={"x-aiguillage-residency": "EU,US"},
    )
    assert resp.status == 200
    assert resp.headers["x-aiguillage-provider"] == "mistral-eu"
    assert us.requests == []


def test_no_compliant_target_is_503_never_a_silent_reroute(
    us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    resp = us_first.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers={"x-aiguillage-residency": "CH"},
    )

    assert resp.status == 503
    error = resp.json()["error"]
    assert error["code"] == "no_compliant_target"
    assert "openai-us is located in US" in error["message"]
    assert "mistral-eu is located in FR" in error["message"]
    assert resp.headers["x-aiguillage-attempts"] == "0"
    assert eu.requests == []
    assert us.requests == []
    record = us_first.audit_for(resp.headers["x-request-id"])
    assert record["outcome"] == "no_compliant_target"
    assert record["status"] == 503
    assert {a["outcome"] for a in record["attempts"]} == {"skipped_residency"}


def test_failover_never_leaves_the_residency(
    us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    eu.set_faults([{"kind": "status", "status": 503}], repeat=True)
    resp = us_first.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "eu-only", "messages": MESSAGES},
    )

    assert resp.status == 502
    assert resp.json()["error"]["code"] == "all_targets_failed"
    assert us.requests == []


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-aiguillage-residency", "Europe"), ("x-aiguillage-jurisdiction", "EU,XYZ")],
)
def test_invalid_header_value_is_400(
    header: str, value: str, us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    resp = us_first.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers={header: value},
    )

    assert resp.status == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_residency_header"
    assert "ISO 3166-1" in error["message"]
    assert eu.requests == []
    assert us.requests == []


def chat_with_headers(sc: RunningSidecar, headers: list[tuple[str, str]]) -> Any:
    """A chat request on route ``chat`` sending ``headers`` (repeats included) as they are."""
    body = {"model": "chat", "messages": MESSAGES}
    return sc.raw("POST", "/v1/chat/completions", json=body, headers=headers)


def test_repeated_headers_all_apply(
    us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    # Two instances: the first allows the whole world's US, the second only the EU. Reading
    # either one alone would serve the US target first; every instance applies.
    resp = chat_with_headers(
        us_first, [("x-aiguillage-residency", "US, FR"), ("x-aiguillage-residency", "EU")]
    )

    assert resp.status == 200
    assert resp.headers["x-aiguillage-provider"] == "mistral-eu"
    assert us.requests == []
    record = us_first.audit_for(resp.headers["x-request-id"])
    assert record["residency"]["locations"] == ["FR"]


def test_repeated_headers_that_share_nothing_leave_no_compliant_target(
    us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    resp = chat_with_headers(
        us_first, [("x-aiguillage-jurisdiction", "US"), ("x-aiguillage-jurisdiction", "FR")]
    )

    assert resp.status == 503
    assert resp.json()["error"]["code"] == "no_compliant_target"
    assert eu.requests == []
    assert us.requests == []


@pytest.mark.parametrize("header", ["x-aiguillage-residency", "x-aiguillage-jurisdiction"])
def test_empty_header_is_400_not_unrestricted(
    header: str, us_first: RunningSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    resp = chat_with_headers(us_first, [(header, "EU"), (header, " ")])

    assert resp.status == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_residency_header"
    assert header in error["message"]
    assert "empty" in error["message"]
    assert eu.requests == []
    assert us.requests == []
    record = us_first.audit_for(resp.headers["x-request-id"])
    assert (record["outcome"], record["status"]) == ("invalid_residency_header", 400)


def test_provider_without_residency_data_is_never_used_under_a_rule(
    start_sidecar: StartSidecar, eu: OpenAISimulator, us: OpenAISimulator
) -> None:
    config = two_provider_config(
        eu,
        us,
        route("chat", us_target(0)),
        **{"openai-us": provider_for(us, location=None, jurisdiction=None, credential="openai-us")},
    )
    sc = start_sidecar(config)
    resp = sc.raw(
        "POST",
        "/v1/chat/completions",
        json={"model": "chat", "messages": MESSAGES},
        headers={"x-aiguillage-jurisdiction": "US"},
    )

    assert resp.status == 503
    assert "has no declared jurisdiction" in resp.json()["error"]["message"]
    assert us.requests == []


# -- the property --------------------------------------------------------------------------------

# The oracle: which pool countries each entry allows (written out, not computed by the sidecar).
ALLOWS = {
    "EU": {"FR", "DE", "IE"},
    "EEA": {"FR", "DE", "IE"},
    "FR": {"FR"},
    "DE": {"DE"},
    "IE": {"IE"},
    "US": {"US"},
    "CH": {"CH"},
}
ENTRIES = sorted(ALLOWS)
N_PROVIDERS = 4
# (location, jurisdiction) of the providers, as they come in practice: mostly EU or US, some
# with an EU location under US jurisdiction, and a few without residency data.
PROVIDER_KINDS: list[tuple[str | None, str | None]] = [
    ("FR", "FR"),
    ("DE", "DE"),
    ("IE", "US"),
    ("FR", "US"),
    ("US", "US"),
    ("US", "US"),
    ("CH", "CH"),
    ("IE", None),
    (None, "US"),
    (None, None),
]
# Rules as routes and apps write them, mostly unset, jurisdiction rules rarer; so that examples
# mix compliant and non-compliant targets rather than mostly having none.
N = None
ROUTE_LOCATIONS: list[list[str] | None] = [
    N,
    N,
    ["EU"],
    ["EU"],
    ["EEA", "CH"],
    ["EU", "US"],
    ["US"],
]
ROUTE_JURISDICTIONS: list[list[str] | None] = [N, N, N, N, ["EU"], ["EU", "US"], ["US"]]
HEADER_LOCATIONS: list[list[str] | None] = [N, N, N, N, ["EU"], ["FR", "DE"], ["US"]]
HEADER_JURISDICTIONS: list[list[str] | None] = [N, N, N, N, N, N, ["EU"], ["US"]]

FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 500},
    {"kind": "status", "status": 503},
    {"kind": "status", "status": 429},
    {"kind": "status", "status": 401},
    {"kind": "status", "status": 400},
    {"kind": "drop"},
    {"kind": "invalid_json"},
    {"kind": "slow_first_byte", "delay": 1.0},
    {"kind": "reset_mid_stream", "after_chunks": 1},
    # Hostile providers: redirects to a host outside every rule (OUTSIDER) or to another
    # provider of the pool (P0..P3, compliant or not), garbage, oversized answers.
    {"kind": "redirect", "status": 307, "location": "OUTSIDER"},
    {"kind": "redirect", "status": 308, "location": "P0"},
    {"kind": "redirect", "status": 302, "location": "P3"},
    {"kind": "raw", "body": "<html>sign in</html>", "headers": {"content-type": "text/html"}},
    {"kind": "raw", "body": '{"choices": 7}', "headers": {"content-type": "application/json"}},
    {"kind": "raw", "body": "data: {]\n\n", "headers": {"content-type": "text/event-stream"}},
    {"kind": "flood", "size": 1024 * 1024, "encoding": "gzip"},
    {"kind": "flood", "size": 1024 * 1024, "body": "data: ", "content_type": "text/event-stream"},
]
# Small enough that the floods above are oversized.
LIMITS = SizeLimits(max_response_bytes=64 * 1024, max_event_bytes=16 * 1024)


def allowed(*rules: list[str] | None) -> set[str] | None:
    """Countries allowed by all the given rules (None = unrestricted)."""
    out: set[str] | None = None
    for rule in rules:
        if rule is None:
            continue
        countries = set().union(*(ALLOWS[e] for e in rule))
        out = countries if out is None else out & countries
    return out


def complies(value: str | None, allowed_set: set[str] | None) -> bool:
    return allowed_set is None or (value is not None and value in allowed_set)


@dataclass
class Scenario:
    providers: list[tuple[str | None, str | None]]  # (location, jurisdiction) per provider
    targets: list[tuple[int, int]]  # (provider index, priority)
    strategy: str
    route_locations: list[str] | None
    route_jurisdictions: list[str] | None
    header_locations: list[str] | None
    header_jurisdictions: list[str] | None
    faults: list[list[dict[str, Any]]]  # per provider
    stream: bool
    retries: int


any_entries = st.lists(st.sampled_from(ENTRIES), min_size=1, max_size=3, unique=True)


def rule(common: list[list[str] | None]) -> st.SearchStrategy[list[str] | None]:
    """A common rule three times out of four, else any list of entries."""
    return st.one_of(*[st.sampled_from(common)] * 3, any_entries)


scenarios = st.builds(
    Scenario,
    # four different kinds of provider, in a random order
    providers=st.permutations(PROVIDER_KINDS).map(lambda kinds: list(kinds[:N_PROVIDERS])),
    targets=st.lists(
        st.tuples(st.integers(0, N_PROVIDERS - 1), st.integers(0, 2)), min_size=1, max_size=5
    ),
    strategy=st.sampled_from(["priority", "weighted"]),
    route_locations=rule(ROUTE_LOCATIONS),
    route_jurisdictions=rule(ROUTE_JURISDICTIONS),
    header_locations=rule(HEADER_LOCATIONS),
    header_jurisdictions=rule(HEADER_JURISDICTIONS),
    faults=st.lists(
        st.lists(st.sampled_from(FAULTS), max_size=3), min_size=N_PROVIDERS, max_size=N_PROVIDERS
    ),
    stream=st.booleans(),
    retries=st.integers(1, 2),
)


def test_no_request_ever_reaches_a_non_compliant_provider(
    lt: LoopThread, start_sidecar: StartSidecar
) -> None:
    sims = [OpenAISimulator(f"p{i}") for i in range(N_PROVIDERS)]
    outsider = OpenAISimulator("outsider")  # in no config: no request may ever reach it
    for sim in [*sims, outsider]:
        lt.run(sim.start())
    sc = start_sidecar(None, {}, poll_seconds=3600)
    counter = iter(range(1_000_000))
    try:

        @settings(max_examples=200, deadline=None)
        @given(scenarios)
        def check(s: Scenario) -> None:
            marker = f"example-{next(counter)}"
            install(lt, sc, sims, s, outsider.url)
            headers = {}
            if s.header_locations:
                headers["x-aiguillage-residency"] = ",".join(s.header_locations)
            if s.header_jurisdictions:
                headers["x-aiguillage-jurisdiction"] = ", ".join(s.header_jurisdictions)

            resp = sc.raw(
                "POST",
                "/v1/chat/completions",
                json={
                    "model": "r",
                    "messages": [{"role": "user", "content": marker}],
                    "stream": s.stream,
                },
                headers=headers,
            )

            locations = allowed(s.route_locations, s.header_locations)
            jurisdictions = allowed(s.route_jurisdictions, s.header_jurisdictions)
            compliant = [
                complies(loc, locations) and complies(jur, jurisdictions)
                for loc, jur in s.providers
            ]
            received = [
                sum(
                    1
                    for r in sim.requests
                    if isinstance(r.body, dict) and r.body["messages"][0]["content"] == marker
                )
                for sim in sims
            ]
            reached = [n > 0 for n in received]
            assert outsider.requests == []
            for i, sim_reached in enumerate(reached):
                assert not (sim_reached and not compliant[i]), (
                    f"p{i} at {s.providers[i]} got a request outside "
                    f"locations={locations} jurisdictions={jurisdictions}"
                )
            check_truthful(sc, resp, s.stream, received)
            if not any(compliant[p] for p, _ in s.targets):
                assert resp.status == 503, resp.body
                assert resp.json()["error"]["code"] == "no_compliant_target"
                assert not any(reached)
            else:
                # 429: every provider tried was rate limited (see sidecar/outcomes.py).
                assert resp.status in (200, 400, 429, 502), resp.body
                if resp.status == 200:
                    answered = int(resp.headers["x-aiguillage-provider"][1:])
                    assert compliant[answered]

        check()
    finally:
        for sim in [*sims, outsider]:
            lt.run(sim.stop())


def check_truthful(sc: RunningSidecar, resp: Raw, stream: bool, received: list[int]) -> None:
    """The audit record says what the client got, and lists exactly the requests made."""
    record = sc.audit_for(resp.headers["x-request-id"])
    assert record["status"] == resp.status
    contacted = [a for a in record["attempts"] if not a["outcome"].startswith("skipped")]
    for i, count in enumerate(received):
        assert count == sum(1 for a in contacted if a["provider"] == f"p{i}"), record
    if resp.status != 200:
        assert record["outcome"] != "ok"
        return
    if not stream:
        assert record["outcome"] == "ok"
        assert contacted[-1]["outcome"] == "ok"
        return
    ended_well = resp.body.endswith(b"data: [DONE]\n\n")
    assert record["outcome"] == ("ok" if ended_well else "stream_error"), record
    if not ended_well:
        assert b"provider stream failed" in resp.body.rstrip().rsplit(b"\n\n", 1)[-1]


def install(
    lt: LoopThread,
    sc: RunningSidecar,
    sims: list[OpenAISimulator],
    s: Scenario,
    outsider: str,
) -> None:
    """Serve the scenario's config right now (a direct swap, no polling) and arm the faults."""
    providers = {
        f"p{i}": Provider(api="openai", endpoint=sim.url + "/v1", location=loc, jurisdiction=jur)
        for i, (sim, (loc, jur)) in enumerate(zip(sims, s.providers, strict=True))
    }
    targets = tuple(
        Target(provider=f"p{p}", model=f"m{n}", priority=prio)
        for n, (p, prio) in enumerate(s.targets)
    )
    residency = Residency.model_validate(
        {
            "locations": None if s.route_locations is None else expand(s.route_locations),
            "jurisdictions": None
            if s.route_jurisdictions is None
            else expand(s.route_jurisdictions),
        }
    )
    config = SidecarConfig(
        namespace="prop",
        providers=providers,
        routes={
            "r": Route(
                name="r",
                strategy=s.strategy,
                residency=residency,
                targets=targets,
                retry=Retry(attempts=s.retries, backoff_base=0.001, backoff_max=0.002),
                timeouts=Timeouts(connect=0.5, first_token=0.15, stream_idle=0.15, total=3),
                circuit_breaker=CircuitBreaker(consecutive_failures=1000),
                size_limits=LIMITS,
            )
        },
    ).sealed()
    (sc.config_dir / "config.json").write_bytes(config.to_json())

    async def swap() -> None:
        sc.runtime.snapshot = load(sc.config_dir, sc.credentials_dir)
        sc.runtime.health = HealthBoard()

    lt.run(swap())
    places = {"OUTSIDER": outsider, **{f"P{i}": sim.url for i, sim in enumerate(sims)}}
    for sim, faults in zip(sims, s.faults, strict=True):
        sim.clear()
        sim.set_faults(
            [
                {**f, "location": places[f["location"]] + "/v1/chat/completions"}
                if f["kind"] == "redirect"
                else f
                for f in faults
            ]
        )
    assert orjson.loads((sc.config_dir / "config.json").read_bytes())["hash"] == config.hash


# -- hostile providers ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "stream"), [(307, False), (308, True)], ids=["plain", "stream"])
@pytest.mark.parametrize("api", sorted(ROWS))
def test_a_redirect_never_takes_the_request_to_another_origin(
    api: str, status: int, stream: bool, lt: LoopThread, start_sidecar: StartSidecar
) -> None:
    row = ROWS[api]
    compliant, outsider = row.simulator(), OpenAISimulator("outsider-us")
    lt.run(compliant.start())
    lt.run(outsider.start())
    try:
        config = SidecarConfig(
            namespace="t",
            providers={"p": located(row, compliant.url)},
            routes={
                "chat": route(
                    "chat", Target(provider="p", model=row.model), residency=Residency(locations=EU)
                )
            },
        )
        sc = start_sidecar(config, {"p": row.credential})
        to = outsider.url + "/v1/chat/completions"
        compliant.set_faults([{"kind": "redirect", "status": status, "location": to}])

        resp = sc.raw(
            "POST",
            "/v1/chat/completions",
            json={"model": "chat", "messages": MESSAGES, "stream": stream},
        )

        assert outsider.requests == []  # neither the prompt nor the key left the residency
        assert len(compliant.requests) == 1
        assert resp.status == 502
        (attempt,) = resp.json()["error"]["attempts"]
        assert (attempt["outcome"], attempt["status"]) == ("redirect_refused", status)
        assert attempt["detail"] == (
            f"provider answered HTTP {status} redirecting to {outsider.url} (not followed)"
        )
        record = sc.audit_for(resp.headers["x-request-id"])
        assert (record["outcome"], record["status"]) == ("all_targets_failed", 502)
        assert record["attempts"] == [attempt]
    finally:
        lt.run(compliant.stop())
        lt.run(outsider.stop())
