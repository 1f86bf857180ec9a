"""Detectors and the column classifier: positives per tag, tricky negatives, bad input.

Pure Python: runs without Django settings (``pytest ... -p no:django``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import string
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from faker import Faker
from stdnum import luhn, verhoeff
from stdnum.de import idnr
from stdnum.iso7064 import mod_11_10

from classification.classifier import TAG_NAMES, classify_column, classify_columns
from classification.detectors import ner
from classification.detectors.base import (
    MAX_CHARS_PER_VALUE,
    STRONG,
    WEAK,
    ColumnSample,
    Finding,
    TagSuggestion,
    confidence,
    prepare_column,
)

LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
THRESHOLD = 0.7  # the default auto-tag setting the scan uses
N = 60
REPO = Path(__file__).resolve().parents[2]


# --- factories ----------------------------------------------------------------------------


def fake(locale: str = "en_US", seed: int = 7) -> Faker:
    faker = Faker(locale)
    faker.seed_instance(seed)
    return faker


def rng(seed: int = 11) -> random.Random:
    return random.Random(seed)


def column(
    name: str, values: Sequence[object], data_type: str = "text", table: str = "t"
) -> ColumnSample:
    return ColumnSample(name=name, data_type=data_type, values=list(values), table=table)


def many(make: Callable[[], object], n: int = N) -> list[object]:
    return [make() for _ in range(n)]


def tags_of(sample: ColumnSample, threshold: float = THRESHOLD) -> set[str]:
    return {s.tag for s in classify_column(sample) if s.confidence >= threshold}


def top_confidence(sample: ColumnSample, tag: str) -> float:
    return max((s.confidence for s in classify_column(sample) if s.tag == tag), default=0.0)


def luhn_number(r: random.Random, length: int, prefix: str = "") -> str:
    body = prefix + "".join(r.choice(string.digits) for _ in range(length - 1 - len(prefix)))
    body = body if body[0] != "0" else "1" + body[1:]
    return body + luhn.calc_check_digit(body)


def nino(r: random.Random) -> str:
    letters = "ABCEGHJKLMNPRSTWXYZ"
    return (
        f"{r.choice('ABCEGHJKLMNPRSTWXY')}{r.choice(letters)} {r.randint(10, 99)} "
        f"{r.randint(10, 99)} {r.randint(10, 99)} {r.choice('ABCD')}"
    )


def de_idnr(r: random.Random) -> str:
    while True:
        digits = r.sample(string.digits, 9)
        digits.insert(r.randrange(10), r.choice(digits))
        body = "".join(digits)
        number = body + mod_11_10.calc_check_digit(body)
        if body[0] != "0" and idnr.is_valid(number):
            return number


def aadhaar(r: random.Random) -> str:
    body = str(r.randint(2, 9)) + "".join(r.choice(string.digits) for _ in range(10))
    return body + verhoeff.calc_check_digit(body)


def jwt(r: random.Random) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    signature = "".join(r.choice(string.ascii_letters) for _ in range(43))
    return f"{part({'alg': 'HS256'})}.{part({'sub': r.randint(1, 9999)})}.{signature}"


def token(r: random.Random, prefix: str, length: int, chars: str = "") -> str:
    chars = chars or string.ascii_letters + string.digits
    return prefix + "".join(r.choice(chars) for _ in range(length))


def clinical_note(r: random.Random) -> str:
    return r.choice(
        [
            "Patient diagnosed with type 2 diabetes, started metformin 500 mg.",
            "History of asthma; uses albuterol inhaler as needed.",
            "Follow-up for hypertension, lisinopril dose increased to 20 mg.",
            "Reports chest pain and fatigue. Referred for ECG.",
            "Called to confirm the appointment time, nothing else to note.",
        ]
    )


# --- e-mail -------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_email_columns_are_tagged_in_every_locale(locale: str) -> None:
    assert "PII.Email" in tags_of(column("contact_email", many(fake(locale).email)))


def test_emails_under_an_unhelpful_column_name_are_still_detected() -> None:
    assert "PII.Email" in tags_of(column("x1", many(fake().email)))


def test_a_column_named_email_without_addresses_gets_no_confident_email_tag() -> None:
    sample = column("email", many(fake().word))
    assert top_confidence(sample, "PII.Email") < 0.5


def test_a_few_stray_emails_in_free_text_do_not_tag_the_column() -> None:
    faker = fake()
    values = [faker.sentence() for _ in range(57)] + [faker.email() for _ in range(3)]
    assert "PII.Email" not in tags_of(column("comment", values))


# --- phone --------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_phone_numbers_are_tagged_in_every_locale(locale: str) -> None:
    assert "PII.Phone" in tags_of(column("phone", many(fake(locale).phone_number)))


def test_international_phone_numbers_are_tagged_under_an_unhelpful_name() -> None:
    numbers = [
        "+44 20 7946 0958",
        "+49 30 901820",
        "+33 1 42 68 53 00",
        "+1 415-555-2671",
        "+39 06 6982",
        "+34 912 345 678",
        "+31 20 624 1111",
    ] * 8
    assert "PII.Phone" in tags_of(column("c3", numbers))


def test_bare_ten_digit_ids_are_not_phone_numbers_without_a_phone_name() -> None:
    r = rng()
    ids = many(lambda: str(r.randint(2 * 10**9, 9 * 10**9)))
    assert "PII.Phone" not in tags_of(column("order_ref", ids))


def test_latitudes_and_prices_are_not_phone_numbers() -> None:
    r = rng()
    latitudes = many(lambda: r.uniform(-90, 90))
    assert tags_of(column("latitude", latitudes, "double precision")) == set()
    assert tags_of(column("amount", many(lambda: f"{r.uniform(1, 999):.2f}"))) == set()


# --- cards --------------------------------------------------------------------------------


@pytest.mark.parametrize("card_type", ["visa16", "mastercard", "amex", "discover", "diners"])
def test_card_numbers_pass_issuer_and_luhn_checks(card_type: str) -> None:
    faker = fake()
    sample = column("card_number", many(lambda: faker.credit_card_number(card_type=card_type)))
    assert "PCI.CardNumber" in tags_of(sample)


def test_formatted_card_numbers_under_an_unhelpful_name_are_tagged() -> None:
    faker = fake()

    def spaced() -> str:
        digits = faker.credit_card_number(card_type="visa16")
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4))

    assert "PCI.CardNumber" in tags_of(column("field_a", many(spaced)))


@pytest.mark.parametrize("length", [8, 10, 12])
def test_luhn_valid_order_numbers_are_not_cards(length: int) -> None:
    r = rng(length)
    sample = column("order_number", many(lambda: luhn_number(r, length)))
    assert all(luhn.is_valid(str(v)) for v in sample.values)
    assert "PCI.CardNumber" not in tags_of(sample)


def test_luhn_valid_numbers_without_an_issuer_prefix_are_not_cards() -> None:
    r = rng()
    assert "PCI.CardNumber" not in tags_of(column("ticket", many(lambda: luhn_number(r, 16, "9"))))


def test_sequential_card_shaped_ids_are_not_cards() -> None:
    values = [luhn_number(random.Random(i), 16, "4") for i in range(3)]  # a few real-looking
    values += [str(4000000000000000 + i) for i in range(200)]
    sample = column("reference", [v for v in values if luhn.is_valid(v)] * 3)
    assert "PCI.CardNumber" not in tags_of(sample)


# --- IBAN and bank accounts ---------------------------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_ibans_are_tagged_in_every_locale(locale: str) -> None:
    assert "Financial.IBAN" in tags_of(column("x1", many(fake(locale).iban)))


def test_ibans_with_a_broken_check_digit_are_not_ibans() -> None:
    faker = fake("de_DE")

    def broken() -> str:
        value = faker.iban()
        return value[:2] + f"{(int(value[2:4]) + 1) % 100:02d}" + value[4:]

    assert "Financial.IBAN" not in tags_of(column("iban", many(broken)))


def test_bank_account_numbers_need_a_bank_account_column_name() -> None:
    r = rng()
    numbers = many(lambda: str(r.randint(10**7, 10**11)))
    assert "Financial.BankAccount" in tags_of(column("bank_account_number", numbers))
    assert "Financial.BankAccount" not in tags_of(column("x1", numbers))


def test_account_ids_are_not_bank_accounts() -> None:
    values = [str(10_000_000 + i) for i in range(N)]
    assert "Financial.BankAccount" not in tags_of(column("account_id", values))


# --- national ids -------------------------------------------------------------------------


NATIONAL_IDS: dict[str, Callable[[random.Random], str]] = {
    "us_ssn": lambda r: fake("en_US", r.randint(0, 999)).ssn(),
    "gb_nino": nino,
    "de_idnr": de_idnr,
    "fr_nir": lambda r: fake("fr_FR", r.randint(0, 999)).ssn(),
    "es_dni": lambda r: fake("es_ES", r.randint(0, 999)).nif(),
    "es_nie": lambda r: fake("es_ES", r.randint(0, 999)).nie(),
    "it_codice_fiscale": lambda r: fake("it_IT", r.randint(0, 999)).ssn(),
    "nl_bsn": lambda r: fake("nl_NL", r.randint(0, 999)).ssn(),
    "in_aadhaar": aadhaar,
}


@pytest.mark.parametrize("scheme", sorted(NATIONAL_IDS))
def test_national_ids_are_tagged_per_scheme_even_without_a_name_hint(scheme: str) -> None:
    r = rng()
    suggestions = classify_column(column("col_7", many(lambda: NATIONAL_IDS[scheme](r), 40)))
    found = {s.tag: s for s in suggestions if s.confidence >= THRESHOLD}
    assert "PII.NationalID" in found
    assert scheme in found["PII.NationalID"].evidence["schemes"]


def test_ssns_breaking_area_group_or_serial_rules_are_not_national_ids() -> None:
    r = rng()
    invalid = [
        f"{area}-{r.randint(10, 99)}-{r.randint(1000, 9999)}" for area in ("000", "666", "912")
    ] + [
        f"{r.randint(100, 599)}-00-{r.randint(1000, 9999)}",
        f"{r.randint(100, 599)}-{r.randint(10, 99)}-0000",
    ]
    assert "PII.NationalID" not in tags_of(column("ssn", invalid * 12))


def test_random_nine_digit_numbers_are_not_bsns() -> None:
    r = rng()
    values = many(lambda: str(r.randint(10**8, 10**9 - 1)), 200)
    assert "PII.NationalID" not in tags_of(column("x1", values))


def test_bare_nine_digit_ssns_count_only_under_an_ssn_name() -> None:
    faker = fake()
    values = many(lambda: faker.ssn().replace("-", ""))
    assert "PII.NationalID" in tags_of(column("ssn", values))
    assert top_confidence(column("x1", values), "PII.NationalID") < 0.5


# --- IP addresses -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ipv4_public", "ipv4_private", "ipv6"])
def test_ip_addresses_are_tagged(kind: str) -> None:
    faker = fake()
    assert "PII.IPAddress" in tags_of(column("client_addr", many(getattr(faker, kind))))


def test_version_strings_are_not_ip_addresses() -> None:
    r = rng()
    versions = many(lambda: ".".join(str(r.randint(0, 12)) for _ in range(4)))
    assert "PII.IPAddress" not in tags_of(column("version", versions))
    assert "PII.IPAddress" not in tags_of(column("x1", versions))


def test_small_dotted_quads_in_an_ip_column_are_still_ip_addresses() -> None:
    r = rng()
    addresses = many(lambda: f"10.0.{r.randint(0, 20)}.{r.randint(1, 30)}")
    assert "PII.IPAddress" in tags_of(column("ip", addresses))


# --- passports ----------------------------------------------------------------------------


def test_passport_numbers_need_a_passport_name() -> None:
    faker = fake()
    values = many(faker.passport_number)
    assert "PII.Passport" in tags_of(column("passport_number", values))
    assert "PII.Passport" not in tags_of(column("x1", values))


def test_product_codes_are_not_passports() -> None:
    r = rng()
    codes = many(lambda: f"PRD{r.randint(10**6, 10**7 - 1)}")
    assert tags_of(column("product_code", codes)) == set()


# --- dates of birth -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("date_of_birth", lambda d: d),
        ("dob", lambda d: d.isoformat()),
        ("geburtsdatum", lambda d: d.strftime("%d.%m.%Y")),
        ("birthdate", lambda d: d.strftime("%d/%m/%Y")),
    ],
)
def test_birth_dates_are_tagged_as_dates_or_strings(
    name: str, render: Callable[[dt.date], object]
) -> None:
    faker = fake()
    values = many(lambda: render(faker.date_of_birth(minimum_age=18, maximum_age=90)))
    assert "PII.DateOfBirth" in tags_of(column(name, values, "date"))


def test_created_at_timestamps_are_not_birth_dates() -> None:
    faker = fake()
    timestamps = many(lambda: faker.date_time_between("-3y"))
    assert tags_of(column("created_at", timestamps, "timestamp without time zone")) == set()


def test_old_dates_in_a_created_column_are_not_birth_dates() -> None:
    faker = fake()
    dates = many(lambda: faker.date_of_birth(minimum_age=18, maximum_age=90))
    assert "PII.DateOfBirth" not in tags_of(column("created_at", dates, "date"))


def test_recent_dates_named_birth_date_are_not_confident_birth_dates() -> None:
    faker = fake()
    future = many(lambda: faker.date_between("+1y", "+20y"))
    assert top_confidence(column("birth_date", future, "date"), "PII.DateOfBirth") < 0.5


# --- postal codes and addresses -----------------------------------------------------------


def test_numeric_postal_codes_need_a_postal_name() -> None:
    faker = fake("de_DE")
    codes = many(faker.postcode)
    assert "PII.PostalCode" in tags_of(column("plz", codes))
    assert "PII.PostalCode" not in tags_of(column("x1", codes))


@pytest.mark.parametrize("locale", ["en_GB", "nl_NL"])
def test_distinctive_postcodes_are_tagged_without_a_name(locale: str) -> None:
    assert "PII.PostalCode" in tags_of(column("x1", many(fake(locale).postcode)))


def test_five_digit_quantities_are_not_postal_codes() -> None:
    r = rng()
    assert tags_of(column("stock", many(lambda: r.randint(10000, 99999)), "integer")) == set()


@pytest.mark.parametrize("locale", LOCALES)
def test_street_addresses_are_tagged_in_every_locale(locale: str) -> None:
    faker = fake(locale)
    suggestions = tags_of(column("shipping_address", many(faker.address)))
    assert "PII.Address" in suggestions
    assert "PII.PersonName" not in suggestions  # street names are not people


# --- secrets ------------------------------------------------------------------------------


SECRETS: dict[str, Callable[[random.Random], str]] = {
    "aws_access_key": lambda r: token(r, "AKIA", 16, string.ascii_uppercase + string.digits),
    "github_token": lambda r: token(r, "ghp_", 36),
    "slack_token": lambda r: token(r, "xoxb-1234567890-", 24),
    "jwt": jwt,
    "pem_private_key": lambda r: (
        "-----BEGIN PRIVATE KEY-----\n" + token(r, "", 64) + "\n-----END PRIVATE KEY-----"
    ),
    "bcrypt": lambda r: token(r, "$2b$12$", 53, string.ascii_letters + string.digits + "./"),
    "argon2": lambda r: (
        "$argon2id$v=19$m=65536,t=3,p=4$" + token(r, "", 22) + "$" + token(r, "", 43)
    ),
    "django_pbkdf2": lambda r: (
        "pbkdf2_sha256$600000$" + token(r, "", 22) + "$" + token(r, "", 43) + "="
    ),
}


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_known_credential_formats_are_secrets_under_any_name(kind: str) -> None:
    r = rng()
    assert "Secret.Credential" in tags_of(column("v", many(lambda: SECRETS[kind](r))))


def test_content_hashes_are_not_credentials() -> None:
    r = rng()
    digests = many(lambda: f"{r.getrandbits(256):064x}")
    assert tags_of(column("checksum", digests)) == set()
    assert tags_of(column("x1", digests)) == set()


def test_generic_api_keys_need_a_secret_column_name() -> None:
    r = rng()
    keys = many(lambda: token(r, "", 40))
    assert "Secret.Credential" in tags_of(column("api_key", keys))
    assert "Secret.Credential" not in tags_of(column("x1", keys))


def test_plaintext_passwords_are_credentials() -> None:
    faker = fake()
    assert "Secret.Credential" in tags_of(column("password", many(faker.password)))


def test_uuids_are_not_credentials_or_anything_else() -> None:
    r = rng()
    ids = many(lambda: str(uuid.UUID(int=r.getrandbits(128))))
    assert tags_of(column("request_id", ids)) == set()


# --- health free text ---------------------------------------------------------------------


def test_clinical_notes_are_phi_free_text() -> None:
    r = rng()
    suggestions = classify_column(column("notes", many(lambda: clinical_note(r))))
    phi = next(s for s in suggestions if s.tag == "PHI.FreeText")
    assert phi.confidence >= THRESHOLD
    assert phi.evidence["match_share"] >= 0.5


def test_free_text_without_health_terms_is_not_phi() -> None:
    faker = fake()
    assert "PHI.FreeText" not in tags_of(column("notes", many(faker.paragraph)))


def test_a_short_diagnosis_code_column_is_not_free_text_phi() -> None:
    assert "PHI.FreeText" not in tags_of(column("status", ["active", "pending"] * 30))


def product_complaint(r: random.Random) -> str:
    """Complaints that use health words in their everyday sense (battery, paint, charger)."""
    item = r.choice(["blender", "power bank", "e-bike", "toothbrush", "massage chair", "drill"])
    problem = r.choice(
        [
            "arrived with a cracked lid",
            "has a fractured case",
            "has a lithium battery that swelled up",
            "shows brush stroke marks on the paint",
            "came without the std charger",
            "was delivered in poor condition",
            "stopped charging after a week",
            "was charged twice on my card",
        ]
    )
    return f"The {item} {problem}. {r.choice(['Please refund me.', 'I want a replacement.'])}"


def health_ticket(r: random.Random) -> str:
    return r.choice(
        [
            "My insulin pen case arrived broken, I need it for my diabetes.",
            "I need the inhaler spacer urgently, my asthma is worse.",
            "The pill organiser for my metformin is missing.",
        ]
    )


def tickets(r: random.Random, health_share: float, n: int = 200) -> list[str]:
    return [
        health_ticket(r) if r.random() < health_share else product_complaint(r) for _ in range(n)
    ]


def phi_confidence(values: Sequence[object], name: str = "body") -> float:
    found = {s.tag: s.confidence for s in classify_column(column(name, values))}
    return found.get("PHI.FreeText", 0.0)


def test_free_text_where_a_fifth_of_values_mention_health_is_phi() -> None:
    assert phi_confidence(tickets(rng(), health_share=0.2)) >= THRESHOLD


def test_product_complaints_with_everyday_health_words_stay_below_half_confidence() -> None:
    assert phi_confidence(tickets(rng(), health_share=0.0)) < 0.5


def test_two_health_mentions_among_many_complaints_do_not_make_a_column_phi() -> None:
    r = rng()
    values = [product_complaint(r) for _ in range(40)]
    values[3], values[17] = health_ticket(r), health_ticket(r)
    assert phi_confidence(values) == 0.0


# --- NER-backed entities ------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en_US", "en_GB", "de_DE", "it_IT", "nl_NL"])
def test_full_names_are_person_names_without_a_name_hint(locale: str) -> None:
    assert "PII.PersonName" in tags_of(column("x1", many(fake(locale).name)))


def test_first_names_are_person_names_under_a_first_name_column() -> None:
    faker = fake("fr_FR")
    assert "PII.PersonName" in tags_of(column("first_name", many(faker.first_name)))


def test_names_in_support_notes_tag_the_notes_column() -> None:
    faker = fake()
    notes = many(lambda: f"Spoke with {faker.name()} about the late invoice.")
    assert "PII.PersonName" in tags_of(column("support_notes", notes))


def test_free_text_without_names_gets_no_entity_tags() -> None:
    faker = fake()
    found = tags_of(column("description", many(lambda: faker.sentence(nb_words=12))))
    assert not found & {"PII.PersonName", "PII.Location", "PII.Organization"}


def test_city_columns_are_locations() -> None:
    assert "PII.Location" in tags_of(column("city", many(fake("en_GB").city)))


def test_country_codes_are_not_locations() -> None:
    assert tags_of(column("country_code", many(fake().country_code))) == set()


def test_company_columns_are_organizations() -> None:
    assert "PII.Organization" in tags_of(column("employer", many(fake().company)))


def test_a_bare_name_column_follows_its_table() -> None:
    faker, r = fake(), rng()
    products = many(
        lambda: (
            f"{r.choice(['Rustic', 'Sleek'])} {r.choice(['Steel', 'Cotton'])} "
            f"{r.choice(['Chair', 'Gloves', 'Keyboard'])}"
        )
    )
    assert "PII.PersonName" not in tags_of(column("name", products, table="products"))
    assert "PII.PersonName" in tags_of(column("name", many(faker.name), table="customers"))
    vendors = tags_of(column("name", many(faker.company), table="vendors"))
    assert "PII.Organization" in vendors
    assert "PII.PersonName" not in vendors


CURRENCY_NAMES = ["US Dollar", "Euro", "Pound Sterling", "Yen", "Swiss Franc", "Swedish Krona"]


@pytest.mark.parametrize("table", ["currencies", "reference_values"])
def test_a_bare_name_column_of_currencies_is_not_a_person_name(table: str) -> None:
    currencies = column("name", CURRENCY_NAMES * 10, table=table)
    assert "PII.PersonName" not in tags_of(currencies, threshold=0.5)


def test_a_bare_name_column_in_an_uninformative_table_holds_people_when_ner_agrees() -> None:
    assert "PII.PersonName" in tags_of(column("name", many(fake().name), table="things"))


def test_product_names_are_not_person_names() -> None:
    r = rng()
    names = many(lambda: f"{fake().color_name()} {r.choice(['Chair', 'Lamp', 'Desk'])}")
    assert "PII.PersonName" not in tags_of(column("product_name", names))


# --- tricky negatives in one place --------------------------------------------------------


def _negatives() -> dict[str, ColumnSample]:
    r, faker = rng(), fake()
    return {
        "sku": column("sku", many(lambda: f"AB-{r.randint(1000, 9999)}-X{r.randint(0, 9)}")),
        "price": column("price", many(lambda: Decimal(r.randint(100, 9999)) / 100), "numeric"),
        "quantity": column("quantity", many(lambda: r.randint(1, 500)), "integer"),
        "status": column("status", many(lambda: r.choice(["active", "pending", "shipped"]))),
        "sequential_id": column("id", list(range(5_000_000, 5_000_000 + N)), "bigint"),
        "boolean": column("is_active", many(lambda: r.random() < 0.5), "boolean"),
        "currency": column("currency", many(faker.currency_code)),
        "url": column("homepage", many(faker.url)),
        "json_settings": column(
            "settings", many(lambda: {"theme": "dark", "n": r.randint(1, 9)}), "jsonb"
        ),
        "user_agent": column("user_agent", many(faker.user_agent)),
        "german_prose": column("notiz", many(lambda: fake("de_DE").text(max_nb_chars=120))),
        "voucher": column(
            "code", many(lambda: "".join(r.choice(string.ascii_uppercase) for _ in range(8)))
        ),
    }


@pytest.mark.parametrize("kind", sorted(_negatives()))
def test_tricky_negatives_get_no_tag(kind: str) -> None:
    assert tags_of(_negatives()[kind], threshold=0.5) == set()


# --- bad input ----------------------------------------------------------------------------


class _BrokenStr:
    def __str__(self) -> str:
        raise RuntimeError("driver type with a broken __str__")


def test_none_only_columns_have_no_suggestions() -> None:
    assert classify_column(column("email", [None] * 50)) == []
    assert classify_column(column("email", [])) == []


def test_bad_values_never_raise() -> None:
    nested: dict = {}
    node = nested
    for _ in range(200):
        node["k"] = {}
        node = node["k"]
    samples = [
        column(
            "blob",
            [b"\xff\xfe\x00bad utf-8 \x80", bytearray(b"\xc3\x28"), memoryview(b"ok")],
            "bytea",
        ),
        column(
            "mixed",
            [
                None,
                1,
                2.5,
                float("nan"),
                Decimal("1.10"),
                dt.date(2020, 1, 1),
                dt.datetime(2020, 1, 1, 12),
                dt.time(3, 4),
                _BrokenStr(),
                [1, [2]],
                {"a": {"b": None}},
                "",
                "   ",
                "\x00\x00",
            ],
        ),
        column("deep", [nested, json.dumps([[[[["x"]]]]])], "json"),
        column("json_text", ["{not json", "[1, 2", "{}"], "json"),
        column("huge", ["a" * 5_000_000, "word " * 400_000]),
    ]
    results = classify_columns(samples)
    assert len(results) == len(samples)
    for suggestions in results:
        assert all(isinstance(s, TagSuggestion) for s in suggestions)


def test_huge_values_are_truncated_before_detectors_see_them() -> None:
    prepared = prepare_column(column("body", ["x" * 3_000_000, b"y" * 3_000_000]))
    assert all(len(text) <= MAX_CHARS_PER_VALUE for text in prepared.texts)


def test_non_utf8_bytes_holding_emails_are_decoded_and_detected() -> None:
    faker, r = fake(), rng()
    values = many(lambda: faker.email().encode() if r.random() < 0.9 else b"\xff\xfe")
    assert "PII.Email" in tags_of(column("contact", values, "bytea"))


def test_json_columns_carry_the_tags_of_their_keys() -> None:
    faker, r = fake(), rng()
    documents = many(lambda: {"contact": faker.email(), "opt_in": r.random() < 0.5})
    email = next(
        s
        for s in classify_column(column("preferences", documents, "jsonb"))
        if s.tag == "PII.Email"
    )
    assert email.confidence >= THRESHOLD
    assert email.evidence["json_path"] == "contact"


def test_json_text_from_a_mysql_driver_is_walked_too() -> None:
    faker = fake()
    documents = many(lambda: json.dumps({"owner": {"phone": faker.phone_number()}}))
    assert "PII.Phone" in tags_of(column("meta", documents, "json"))


def test_mostly_null_columns_are_judged_on_their_non_null_values() -> None:
    faker, r = fake(), rng()
    values = many(lambda: faker.email() if r.random() < 0.3 else None, 200)
    suggestions = classify_column(column("secondary_email", values))
    email = next(s for s in suggestions if s.tag == "PII.Email")
    assert email.evidence["sampled_non_null"] == sum(v is not None for v in values)
    assert email.confidence >= THRESHOLD


# --- evidence and masking -----------------------------------------------------------------


def _positives() -> dict[str, ColumnSample]:
    r, faker = rng(), fake()
    return {
        "email": column("email", many(faker.email)),
        "phone": column("phone", many(fake("en_GB").phone_number)),
        "card": column("card", many(lambda: faker.credit_card_number(card_type="visa16"))),
        "iban": column("iban", many(fake("de_DE").iban)),
        "ssn": column("ssn", many(faker.ssn)),
        "nino": column("nino", many(lambda: nino(r))),
        "ip": column("ip", many(faker.ipv4)),
        "dob": column("dob", many(lambda: faker.date_of_birth(minimum_age=20).isoformat())),
        "address": column("address", many(faker.street_address)),
        "name": column("full_name", many(faker.name)),
        "city": column("city", many(faker.city)),
        "secret": column("token", many(lambda: SECRETS["github_token"](r))),
        "phi": column("notes", many(lambda: clinical_note(r))),
        "postcode": column("postcode", many(fake("en_GB").postcode)),
        "passport": column("passport_no", many(faker.passport_number)),
        "account": column("account_number", many(lambda: str(r.randint(10**8, 10**11)))),
    }


@pytest.mark.parametrize("kind", sorted(_positives()))
def test_evidence_never_contains_a_raw_sampled_value(kind: str) -> None:
    sample = _positives()[kind]
    suggestions = classify_column(sample)
    assert suggestions, f"{kind} should produce a suggestion"
    dumped = json.dumps([s.evidence for s in suggestions])
    raw = {str(v) for v in sample.values if len(str(v)) >= 4}
    leaked = [value for value in raw if value in dumped]
    assert leaked == []


def test_evidence_has_the_contracted_shape() -> None:
    sample = column("email", many(fake().email, 50))
    (email,) = [s for s in classify_column(sample) if s.tag == "PII.Email"]
    evidence = json.loads(json.dumps(email.evidence))  # JSON-serialisable
    assert evidence["detectors"] == ["email_regex", "name_hint"]
    assert evidence["matched"] == 50
    assert evidence["sampled_non_null"] == 50
    assert evidence["match_share"] == 1.0
    assert evidence["name_hint"] is True
    assert 1 <= len(evidence["examples"]) <= 3


def test_masked_examples_follow_the_documented_shapes() -> None:
    card = classify_column(column("card", ["4242 4242 4242 4242"] * 5))[0]
    assert card.evidence["examples"][0] == "**** **** **** 4242"
    email = classify_column(column("email", ["jane.doe@example.com"] * 5))[0]
    assert email.evidence["examples"][0] == "j***@example.com"
    phone = classify_column(column("phone", ["+44 20 7946 0123"] * 5))[0]
    assert phone.evidence["examples"][0] == "+44 ****** 123"


# --- the classifier contract --------------------------------------------------------------


def test_classify_columns_returns_one_sorted_list_per_sample() -> None:
    faker = fake()
    samples = [
        column("email", many(faker.email)),
        column("nothing", [None] * 5),
        column("full_name", many(faker.name)),
    ]
    results = classify_columns(samples)
    assert len(results) == 3
    assert results[1] == []
    for suggestions in results:
        confidences = [s.confidence for s in suggestions]
        assert confidences == sorted(confidences, reverse=True)
        assert all(0.0 <= c <= 1.0 for c in confidences)


def test_classify_column_agrees_with_classify_columns() -> None:
    sample = column("iban", many(fake("fr_FR").iban))
    assert classify_column(sample) == classify_columns([sample])[0]


def test_every_emitted_tag_is_in_the_taxonomy() -> None:
    every = [*_positives().values(), *_negatives().values()]
    emitted = {s.tag for suggestions in classify_columns(every) for s in suggestions}
    assert emitted <= set(TAG_NAMES)
    assert len(TAG_NAMES) == 16


def test_ner_runs_once_per_batch_across_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = ner.load_model()
    calls: list[int] = []

    class CountingModel:
        def pipe(self, texts, **kwargs):  # type: ignore[no-untyped-def]
            texts = list(texts)
            calls.append(len(texts))
            return nlp.pipe(texts, **kwargs)

    monkeypatch.setattr(ner, "load_model", lambda: CountingModel())
    faker = fake()
    samples = [column(f"name_{i}", many(faker.name, 30)) for i in range(12)]
    samples += [column(f"email_{i}", many(faker.email, 30)) for i in range(5)]
    classify_columns(samples)
    assert 1 <= len(calls) <= 2  # a first pass and at most one pass for undecided columns
    assert sum(calls) <= 12 * ner.NER_VALUES_PER_COLUMN  # bounded; e-mails never sent


def test_ids_codes_and_emails_never_reach_the_ner_model() -> None:
    faker, r = fake(), rng()
    for sample in (
        column("id", many(lambda: str(uuid.UUID(int=r.getrandbits(128))))),
        column("email", many(faker.email)),
        column("currency", many(faker.currency_code)),
        column("qty", many(lambda: r.randint(1, 9)), "integer"),
    ):
        assert not ner.wants_ner(prepare_column(sample))


def test_confidence_combines_share_strength_and_name_hint() -> None:
    def finding(**kwargs: object) -> Finding:
        base = {
            "tag": "PII.Email",
            "detector": "d",
            "matched": 50,
            "checked": 50,
            "strength": STRONG,
        }
        return Finding(**{**base, **kwargs})  # type: ignore[arg-type]

    full = confidence(finding())
    assert full == pytest.approx(STRONG)
    assert confidence(finding(name_hint=True)) > full
    assert confidence(finding(matched=20)) < full
    assert confidence(finding(matched=5)) == 0.0  # under the minimum share
    assert confidence(finding(matched=0, name_hint=True)) == 0.0  # a name alone is no evidence
    assert confidence(finding(strength=WEAK)) < 0.5
    assert confidence(finding(strength=WEAK, name_hint=True)) >= THRESHOLD
    assert confidence(finding(negative_hint=True)) < 0.5


def test_detectors_and_classifier_import_without_django() -> None:
    code = (
        "import sys; import classification.classifier, classification.detectors; "
        "print(any(m == 'django' or m.startswith('django.') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "False"
