"""Valid personal data for the evaluation corpus: from Faker where it makes valid values,
computed here (check digits by the standards' algorithms) where it does not.

What Faker generates validly was checked for each locale (seed 1, 200 draws, validated by
python-stdnum and phonenumbers): ``ssn`` is valid for fr_FR (NIR), it_IT (codice
fiscale), nl_NL (BSN) and pl_PL (PESEL), not for de_DE and es_ES (US-style numbers);
es_ES ``nif`` and ``nie`` are valid; ``iban`` is valid everywhere; ``vat_id`` is valid for
de_DE and it_IT only (0.5–7.5 % elsewhere); ``phone_number`` is valid for 100 % of es_ES,
it_IT and pl_PL draws, 99.5 % of fr_FR, 67 % of de_DE and 62 % of nl_NL (the rest are
numbers no country has). So German tax ids, the VAT numbers of the other locales and the
identifiers of the countries without a Faker locale here are computed, and phone numbers
are kept only when phonenumbers calls them valid: a number no country uses is not one a
detector should find. Every value is checked by stdnum before it is used.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

LOCALES = ("fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pl_PL")


@dataclass(frozen=True)
class Kind:
    """One kind of value: its category, how it is made, and how people name it."""

    category: str
    kind: str
    locale: str  # the Faker locale whose language the sentences are in
    make: Callable[[random.Random, Faker], str]
    names: tuple[str, ...] = ()  # words written before it ("BSN", "Steuer-ID")


def _digits(rng: random.Random, n: int, first: str = "0123456789") -> str:
    return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))


def _date6(rng: random.Random, order: str = "ymd", month_offset: int = 0) -> str:
    y, m, d = rng.randint(0, 99), rng.randint(1, 12) + month_offset, rng.randint(1, 28)
    parts = {"y": f"{y:02d}", "m": f"{m:02d}", "d": f"{d:02d}"}
    return "".join(parts[c] for c in order)


def _valid(module: str, make: Callable[[], str]) -> str:
    """A value from ``make`` that stdnum ``module`` accepts (retrying when a rule beyond
    the check digit, such as the IdNr's digit pattern, rejects it)."""
    import importlib

    is_valid = importlib.import_module(f"stdnum.{module}").is_valid
    for _ in range(1000):
        value = make()
        if is_valid(value):
            return value
    raise RuntimeError(f"could not make a valid {module}")


# -- computed identifiers ------------------------------------------------------------------


def de_idnr(rng: random.Random, _: Faker) -> str:
    from stdnum.iso7064 import mod_11_10

    def make() -> str:
        body = _digits(rng, 10, "123456789")
        number = body + mod_11_10.calc_check_digit(body)
        return rng.choice([number, f"{number[:2]} {number[2:5]} {number[5:8]} {number[8:]}"])

    return _valid("de.idnr", make)


def be_nn(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        body = _date6(rng, "ymd") + _digits(rng, 3)
        check = 97 - int(body) % 97
        n = f"{body}{check:02d}"
        return rng.choice([n, f"{n[:2]}.{n[2:4]}.{n[4:6]}-{n[6:9]}.{n[9:]}"])

    return _valid("be.nn", make)


def fi_hetu(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        date, serial = _date6(rng, "dmy"), f"{rng.randint(2, 899):03d}"
        check = "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(date + serial) % 31]
        return f"{date}{rng.choice('-A')}{serial}{check}"

    return _valid("fi.hetu", make)


def se_personnummer(rng: random.Random, _: Faker) -> str:
    from stdnum import luhn

    def make() -> str:
        body = _date6(rng, "ymd") + _digits(rng, 3)
        return f"{body[:6]}-{body[6:]}{luhn.calc_check_digit(body)}"

    return _valid("se.personnummer", make)


def ie_pps(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        body = _digits(rng, 7)
        total = sum(int(d) * w for d, w in zip(body, range(8, 1, -1), strict=True))
        return body + "WABCDEFGHIJKLMNOPQRSTUV"[total % 23]

    return _valid("ie.pps", make)


def ro_cnp(rng: random.Random, _: Faker) -> str:
    from stdnum.ro import cnp

    def make() -> str:
        body = (
            rng.choice("1256") + _date6(rng, "ymd") + f"{rng.randint(1, 46):02d}" + _digits(rng, 3)
        )
        return body + cnp.calc_check_digit(body)

    return _valid("ro.cnp", make)


def pt_cc(rng: random.Random, _: Faker) -> str:
    from stdnum.pt import cc

    def make() -> str:
        body = _digits(rng, 9) + rng.choice(["ZZ", "ZX", "AB"])
        n = body + cc.calc_check_digit(body)
        return f"{n[:8]} {n[8]} {n[9:]}"

    return _valid("pt.cc", make)


def at_vnr(rng: random.Random, _: Faker) -> str:
    from stdnum.at import vnr

    def make() -> str:
        body = _digits(rng, 3, "123456789") + "0" + _date6(rng, "dmy")
        n = body[:3] + vnr.calc_check_digit(body) + body[4:]
        return rng.choice([n, f"{n[:4]} {n[4:]}"])

    return _valid("at.vnr", make)


def cz_rc(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        body = f"{rng.randint(54, 99):02d}{rng.randint(1, 12) + rng.choice([0, 50]):02d}"
        body += f"{rng.randint(1, 28):02d}{_digits(rng, 3)}"
        check = int(body) % 11 % 10
        return f"{body[:6]}/{body[6:]}{check}"

    return _valid("cz.rc", make)


def hr_oib(rng: random.Random, _: Faker) -> str:
    from stdnum.iso7064 import mod_11_10

    def make() -> str:
        body = _digits(rng, 10)
        return body + mod_11_10.calc_check_digit(body)

    return _valid("hr.oib", make)


def ee_ik(rng: random.Random, _: Faker) -> str:
    from stdnum.ee import ik

    def make() -> str:
        body = rng.choice("3456") + _date6(rng, "ymd") + _digits(rng, 3)
        return body + ik.calc_check_digit(body)

    return _valid("ee.ik", make)


# -- computed VAT numbers ------------------------------------------------------------------


def fr_vat(rng: random.Random, _: Faker) -> str:
    from stdnum import luhn

    def make() -> str:
        body = _digits(rng, 8, "123456789")
        siren = body + luhn.calc_check_digit(body)
        key = (12 + 3 * (int(siren) % 97)) % 97
        return rng.choice(
            [f"FR{key:02d}{siren}", f"FR {key:02d} {siren[:3]} {siren[3:6]} {siren[6:]}"]
        )

    return _valid("eu.vat", make)


def es_vat(rng: random.Random, _: Faker) -> str:
    return _valid("eu.vat", lambda: "ES" + _faker_dni(rng))


def _faker_dni(rng: random.Random) -> str:
    body = _digits(rng, 8)
    return body + "TRWAGMYFPDXBNJZSQVHLCKE"[int(body) % 23]


def nl_vat(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        body = _digits(rng, 8)
        total = sum(int(d) * w for d, w in zip(body, range(9, 1, -1), strict=True))
        return f"NL{body}{total % 11}B{rng.randint(1, 99):02d}"

    return _valid("eu.vat", make)


def pl_vat(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        body = _digits(rng, 9, "123456789")
        check = sum(int(d) * w for d, w in zip(body, (6, 5, 7, 2, 3, 4, 5, 6, 7), strict=True)) % 11
        return f"PL{body}{check}"

    return _valid("eu.vat", make)


def be_vat(rng: random.Random, _: Faker) -> str:
    def make() -> str:
        body = "0" + _digits(rng, 7, "123456789")
        return f"BE{body}{97 - int(body) % 97:02d}"

    return _valid("eu.vat", make)


# -- from Faker ----------------------------------------------------------------------------


def _faker(method: str, module: str) -> Callable[[random.Random, Faker], str]:
    def make(rng: random.Random, fake: Faker) -> str:
        return _valid(module, lambda: str(getattr(fake, method)()))

    return make


def iban(rng: random.Random, fake: Faker) -> str:
    from stdnum import iban as stdnum_iban

    value = _valid("iban", fake.iban)
    return rng.choice([value, stdnum_iban.format(value)])


def nir(rng: random.Random, fake: Faker) -> str:
    from stdnum.fr import nir as stdnum_nir

    value = _valid("fr.nir", fake.ssn)
    return rng.choice([value, stdnum_nir.format(value)])


def bsn(rng: random.Random, fake: Faker) -> str:
    value = _valid("nl.bsn", fake.ssn)
    return rng.choice([value, f"{value[:4]}.{value[4:6]}.{value[6:]}"])


# (IIN prefix choices, length): Faker's card numbers are not used because its JCB and
# Maestro prefixes fall outside the networks' real IIN ranges (3507..., 0604...).
_CARD_NETWORKS = (
    (["4"], 16),  # Visa
    ([str(n) for n in range(51, 56)] + ["2221", "2500", "2720"], 16),  # Mastercard
    (["34", "37"], 15),  # American Express
    (["6011", "65"], 16),  # Discover
    ([str(n) for n in range(3528, 3590, 7)], 16),  # JCB
    (["36"], 14),  # Diners Club
    (["6759", "5018"], 16),  # Maestro
    (["62"], 16),  # UnionPay
)


def card(rng: random.Random, fake: Faker) -> str:
    from stdnum import luhn

    prefixes, length = rng.choice(_CARD_NETWORKS)
    body = rng.choice(prefixes)
    body += _digits(rng, length - len(body) - 1)
    value = body + luhn.calc_check_digit(body)
    if rng.random() < 0.5:
        groups = {16: (4, 4, 4, 4), 15: (4, 6, 5), 14: (4, 6, 4)}[length]
        parts, i = [], 0
        for size in groups:
            parts.append(value[i : i + size])
            i += size
        return rng.choice(" -").join(parts)
    return value


def email(rng: random.Random, fake: Faker) -> str:
    return str(rng.choice([fake.email, fake.free_email, fake.company_email])())


def ip(rng: random.Random, fake: Faker) -> str:
    """IPv4 (public or private) from Faker; IPv6 made here in the global unicast range
    2000::/3, because Faker draws from the whole 128-bit space, which is mostly reserved
    (no host has such an address)."""
    import ipaddress

    if rng.random() < 0.34:
        return str(ipaddress.IPv6Address((1 << 125) | rng.getrandbits(125)))
    return str(rng.choice([fake.ipv4_public, fake.ipv4_private])())


def phone(locale: str) -> Callable[[random.Random, Faker], str]:
    region = locale.split("_")[1]

    def make(rng: random.Random, fake: Faker) -> str:
        import phonenumbers

        for _ in range(100):
            written = fake.phone_number()
            try:
                number = phonenumbers.parse(written, region)
            except phonenumbers.NumberParseException:
                continue
            if not phonenumbers.is_valid_number(number):
                continue
            if rng.random() < 0.3:  # also as people paste it from a signature
                fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL
                return str(phonenumbers.format_number(number, fmt))
            return str(written)
        raise RuntimeError(f"Faker {locale} made no valid phone number in 100 tries")

    return make


def kinds() -> list[Kind]:
    """Every kind of value in the corpus, with the locale whose sentences carry it."""
    out: list[Kind] = []
    for locale in LOCALES:
        out += [
            Kind("email", "email", locale, email, ("e-mail", "mail")),
            Kind("phone", "phone", locale, phone(locale), ("tel", "phone", "Telefon", "tél")),
            Kind("iban", "iban", locale, iban, ("IBAN",)),
            Kind("payment_card", "payment_card", locale, card, ("card", "carte", "Karte")),
            Kind("ip_address", "ip_address", locale, ip, ("IP",)),
        ]
    out += [
        Kind("national_id", "fr.nir", "fr_FR", nir, ("numéro de sécurité sociale", "NIR")),
        Kind(
            "national_id", "de.idnr", "de_DE", de_idnr, ("Steuer-ID", "Steueridentifikationsnummer")
        ),
        Kind("national_id", "es.dni", "es_ES", _faker("nif", "es.dni"), ("DNI",)),
        Kind("national_id", "es.nie", "es_ES", _faker("nie", "es.nie"), ("NIE",)),
        Kind(
            "national_id",
            "it.codicefiscale",
            "it_IT",
            _faker("ssn", "it.codicefiscale"),
            ("codice fiscale",),
        ),
        Kind("national_id", "nl.bsn", "nl_NL", bsn, ("BSN", "burgerservicenummer")),
        Kind("national_id", "pl.pesel", "pl_PL", _faker("ssn", "pl.pesel"), ("PESEL",)),
        Kind("national_id", "be.nn", "fr_FR", be_nn, ("numéro de registre national",)),
        Kind("national_id", "fi.hetu", "fr_FR", fi_hetu, ("henkilötunnus",)),
        Kind("national_id", "se.personnummer", "de_DE", se_personnummer, ("personnummer",)),
        Kind("national_id", "ie.pps", "fr_FR", ie_pps, ("PPS number",)),
        Kind("national_id", "ro.cnp", "it_IT", ro_cnp, ("CNP",)),
        Kind("national_id", "pt.cc", "es_ES", pt_cc, ("cartão de cidadão",)),
        Kind("national_id", "at.vnr", "de_DE", at_vnr, ("Sozialversicherungsnummer", "SVNR")),
        Kind("national_id", "cz.rc", "pl_PL", cz_rc, ("rodné číslo",)),
        Kind("national_id", "hr.oib", "it_IT", hr_oib, ("OIB",)),
        Kind("national_id", "ee.ik", "fr_FR", ee_ik, ("isikukood",)),
        Kind("vat", "de.vat", "de_DE", _faker("vat_id", "eu.vat"), ("USt-IdNr.",)),
        Kind("vat", "it.vat", "it_IT", _faker("vat_id", "eu.vat"), ("partita IVA",)),
        Kind("vat", "fr.vat", "fr_FR", fr_vat, ("TVA intracommunautaire",)),
        Kind("vat", "es.vat", "es_ES", es_vat, ("NIF-IVA",)),
        Kind("vat", "nl.vat", "nl_NL", nl_vat, ("btw-nummer",)),
        Kind("vat", "pl.vat", "pl_PL", pl_vat, ("NIP UE",)),
        Kind("vat", "be.vat", "fr_FR", be_vat, ("numéro de TVA",)),
    ]
    return out
