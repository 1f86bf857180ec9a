"""The tuning set of bench/classify.py: labelled columns the detectors were written against.

Faker over ``TUNING_LOCALES`` (fixed seed): positives for every Warden tag under realistic
and unhelpful column names, and tricky negatives (Luhn-passing order numbers, SKUs, UUIDs,
content hashes, version strings, free text without names, prices, enums, created_at
timestamps, country codes...). Each column is its own table.
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from faker import Faker
from stdnum import luhn, verhoeff
from stdnum.de import idnr
from stdnum.iso7064 import mod_11_10

from bench.heldout import TUNING_LOCALES
from classification.detectors.base import ColumnSample

SEED = 20261124
LOCALES = TUNING_LOCALES[:7]  # en_IN (the last) only for Aadhaar numbers
UNHELPFUL_NAMES = ("x1", "col_7", "field_a", "value", "data", "c3", "attr2", "v")


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
