"""The labelled evaluation corpus: texts with personal data, and clean texts full of
look-alikes, all made from one seed.

A *personal* text is one to three values of :mod:`.values` in sentences of their locale,
with Faker's filler around them. Each value is written *named* (its name just before it:
"BSN 123456782", "Steuer-ID: ...") or *bare* ("Le dossier mentionne 123456782."), half and
half, and its label records which, because a detector may rightly need the name for
identifiers whose checksum lets one random number in ten through.

A *clean* text holds no personal data but many things that look like it: order and invoice
numbers, tracking numbers, dates, times and timestamps, prices, version strings, UUIDs,
hashes, EAN and ISBN codes, postal codes, code with numbers and loopback addresses. Random
digits are drawn uniformly, never chosen to avoid a detector.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

from aiguillage.devtools.privacy_eval.values import LOCALES, Kind, kinds


@dataclass(frozen=True)
class Label:
    category: str
    kind: str
    start: int
    end: int
    named: bool


@dataclass(frozen=True)
class Sample:
    text: str
    labels: tuple[Label, ...]
    locale: str


_BARE: dict[str, tuple[str, ...]] = {
    "fr_FR": (
        "Voici ce qu'il a noté : {v}.",
        "Le dossier mentionne {v} depuis hier.",
        "À reprendre : {v}",
    ),
    "de_DE": ("Im Vorgang steht {v}.", "Bitte prüfen: {v}", "Notiert wurde {v} am Morgen."),
    "es_ES": ("En el expediente figura {v}.", "Revisar: {v}", "Anotó {v} ayer."),
    "it_IT": ("Nel fascicolo c'è {v}.", "Da verificare: {v}", "Ha annotato {v} ieri."),
    "nl_NL": ("In het dossier staat {v}.", "Graag nakijken: {v}", "Genoteerd werd {v} gisteren."),
    "pl_PL": ("W aktach jest {v}.", "Do sprawdzenia: {v}", "Zanotował {v} wczoraj."),
}
_NAMED = ("{n}: {v}", "{n} {v}", "({n} {v})", "{n} = {v}")


def _n(rng: random.Random, low: int, high: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(low, high)))


def _ean13(rng: random.Random) -> str:
    body = "4" + _n(rng, 11, 11)
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def _isbn13(rng: random.Random) -> str:
    body = "978" + _n(rng, 9, 9)
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return f"{body[:3]}-{body[3]}-{body[4:6]}-{body[6:12]}-{(10 - total % 10) % 10}"


def _date(r: random.Random) -> str:
    return f"{r.randint(2020, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def _time(r: random.Random) -> str:
    return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"


def _tracking(r: random.Random) -> str:
    return "1Z" + "".join(r.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16))


_LOOK_ALIKES: tuple[Callable[[random.Random], str], ...] = (
    lambda r: f"Order #{_n(r, 6, 12)} has shipped.",
    lambda r: f"Commande n° {_n(r, 6, 12)} expédiée le {r.randint(1, 28)}/{r.randint(1, 12)}/2024.",
    lambda r: f"Ihre Bestellnummer lautet {_n(r, 8, 11)}.",
    lambda r: f"Invoice INV-{r.randint(2019, 2026)}-{r.randint(1, 999999):06d} is due.",
    lambda r: f"Rechnung Nr. {_n(r, 7, 10)} vom {r.randint(1, 28):02d}.{r.randint(1, 12):02d}.2025",
    lambda r: f"Tracking {_tracking(r)}",
    lambda r: f"Sendungsnummer {_n(r, 12, 22)}",
    lambda r: f"Ref. {_n(r, 8, 16)} — please quote it.",
    lambda r: f"Ticket {_n(r, 4, 4)}-{_n(r, 4, 4)} was closed.",
    lambda r: f"Meeting on {_date(r)} at {_time(r)[:5]}.",
    lambda r: f"Logged at {_date(r)}T{_time(r)}Z",
    lambda r: f"epoch {r.randint(15 * 10**8, 18 * 10**8)} ms {r.randint(15 * 10**11, 18 * 10**11)}",
    lambda r: f"Total: {r.randint(1, 999)} {r.randint(0, 999):03d},{r.randint(0, 99):02d} €",
    lambda r: f"Price ${r.randint(1, 99)},{r.randint(0, 999):03d}.{r.randint(0, 99):02d}",
    lambda r: f"Preis {r.randint(1, 99)}.{r.randint(0, 999):03d},{r.randint(0, 99):02d} EUR",
    lambda r: (
        f"Upgrade to v{r.randint(0, 20)}.{r.randint(0, 40)}.{r.randint(0, 99)} "
        f"(build {_n(r, 4, 6)})."
    ),
    lambda r: f"Requires version {'.'.join(str(r.randint(0, 9)) for _ in range(4))} or later.",
    lambda r: f"request id {uuid.UUID(int=r.getrandbits(128))}",
    lambda r: f"commit {r.getrandbits(160):040x}",
    lambda r: f"EAN {_ean13(r)}, ISBN {_isbn13(r)}",
    lambda r: f"Shipped to {r.randint(10000, 99999)} Paris, {r.randint(10000, 99999)} Berlin.",
    lambda r: f"for i in range({_n(r, 6, 9)}): total += i * {r.randint(2, 999)}",
    lambda r: f"curl http://127.0.0.1:{r.randint(1024, 65535)}/v1/items/{_n(r, 6, 10)}",
    lambda r: f"listen 0.0.0.0:{r.randint(1024, 65535)}; ::1 and localhost",
    lambda r: f"SELECT * FROM orders WHERE id = {_n(r, 6, 12)} AND total > {r.randint(1, 9999)};",
    lambda r: f"Population: {r.randint(1, 99)} {r.randint(0, 999):03d} {r.randint(0, 999):03d}.",
    lambda r: f"Color #{r.getrandbits(24):06x}, ratio {r.random():.6f}",
    lambda r: (
        f"Page {r.randint(1, 999)} of {r.randint(1000, 9999)}; "
        f"§{r.randint(1, 30)}.{r.randint(1, 30)}"
    ),
    lambda r: f"Case {r.randint(2019, 2026)}/{_n(r, 5, 7)}, docket {_n(r, 3, 3)}-{_n(r, 6, 6)}",
)


def clean(rng: random.Random, fakers: dict[str, Faker]) -> Sample:
    fake = fakers[rng.choice(LOCALES)]
    parts = [fake.sentence()]
    for _ in range(rng.randint(2, 4)):
        parts.append(rng.choice(_LOOK_ALIKES)(rng))
        parts.append(fake.sentence())
    return Sample(" ".join(parts), (), "")


def build(seed: int, personal_texts: int, clean_texts: int) -> tuple[list[Sample], list[Sample]]:
    """The corpus for ``seed``: the same texts every time for the same arguments. Texts with
    personal data start with each kind in turn, so every kind is about equally frequent."""
    rng = random.Random(seed)
    fakers = {}
    for i, locale in enumerate(LOCALES):
        fakers[locale] = Faker(locale)
        fakers[locale].seed_instance(seed * 100 + i)
    kind_list = kinds()
    with_data = []
    for i in range(personal_texts):
        first = kind_list[i % len(kind_list)]
        same_locale = [k for k in kind_list if k.locale == first.locale]
        with_data.append(_compose(rng, fakers[first.locale], first, same_locale))
    return with_data, [clean(rng, fakers) for _ in range(clean_texts)]


def _compose(rng: random.Random, fake: Faker, first: Kind, same_locale: list[Kind]) -> Sample:
    chosen = [first] + [rng.choice(same_locale) for _ in range(rng.randint(0, 2))]
    text = fake.sentence() + " "
    labels = []
    for kind in chosen:
        value = kind.make(rng, fake)
        named = bool(kind.names) and rng.random() < 0.5
        template = (
            rng.choice(_NAMED).replace("{n}", rng.choice(kind.names))
            if named
            else rng.choice(_BARE[first.locale])
        )
        before, after = template.split("{v}")
        start = len(text) + len(before)
        text += before + value + after + " "
        labels.append(Label(kind.category, kind.kind, start, start + len(value), named))
        text += fake.sentence() + " "
    return Sample(text.strip(), tuple(labels), first.locale)
