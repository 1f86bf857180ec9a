"""Value-only recall and row context: opaque column names, international formats.

Pure Python like test_detectors.py: the classifier sees a table's columns together, as the
scan samples them (the n-th value of each column comes from the same row).
"""

from __future__ import annotations

import datetime as dt
import json
import random

from faker import Faker

from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample
from classification.detectors.names import value_kind
from tests.classification.tables import table, tags


def fake(locale: str = "en_US", seed: int = 3) -> Faker:
    faker = Faker(locale)
    faker.seed_instance(seed)
    return faker


# --- names ----------------------------------------------------------------------------


def test_first_and_last_name_columns_are_person_names_by_their_pairing() -> None:
    f = fake("de_DE")
    people = [(f.first_name(), f.last_name()) for _ in range(40)]
    samples = table(
        {
            "c0": [first for first, _ in people],
            "c1": [last for _, last in people],
            "c2": [random.Random(i).randint(1, 9) for i in range(40)],
        }
    )
    first, last, number = (tags(found) for found in classify_columns(samples))
    assert "PII.PersonName" in first and "PII.PersonName" in last
    context = last["PII.PersonName"].evidence["context"]
    assert context["rule"] == "last name of a first/last name pair"
    assert context["sibling_column"] == "c0"
    assert number == {}


def test_surnames_alone_are_not_enough_but_beside_first_names_they_are() -> None:
    f = fake("fr_FR")
    surnames = [f.last_name() for _ in range(40)]
    alone = tags(classify_columns(table({"c1": surnames}))[0])
    assert "table_context" not in str(alone)
    paired = classify_columns(table({"c0": [f.first_name() for _ in range(40)], "c1": surnames}))
    assert "PII.PersonName" in tags(paired[1])


def test_single_first_names_are_person_names_on_their_values_alone() -> None:
    f = fake("es_ES")
    found = tags(classify_columns(table({"c3": [f.first_name() for _ in range(40)]}))[0])
    assert "PII.PersonName" in found
    assert "name_frequency" in found["PII.PersonName"].evidence["detectors"] or found


def test_name_frequencies_know_names_of_many_cultures_and_not_products_or_companies() -> None:
    for first in ("José", "Søren", "Zsófia", "Aigerim", "Oluwaseun", "Nguyen Van An"):
        assert value_kind(first) in ("first", "full"), first
    assert value_kind("María José García-López") == "full"
    for other in ("Ergonomic Steel Chair", "Müller GmbH", "Silva Lda.", "ab12", "DE"):
        assert value_kind(other) is None, other


def test_catalogue_product_names_are_not_person_names() -> None:
    rng = random.Random(5)
    adjectives = ["Ergonomic", "Rustic", "Sleek", "Durable", "Compact", "Wireless"]
    materials = ["Steel", "Wooden", "Cotton", "Granite", "Plastic", "Leather"]
    things = ["Chair", "Lamp", "Desk", "Keyboard", "Bottle", "Backpack", "Wallet"]
    products = [
        f"{rng.choice(adjectives)} {rng.choice(materials)} {rng.choice(things)}" for _ in range(40)
    ]
    assert "PII.PersonName" not in tags(classify_columns(table({"c2": products}))[0])


def test_country_names_are_locations_and_not_people() -> None:
    f = fake("en_US")
    found = tags(classify_columns(table({"c5": [f.country() for _ in range(40)]}))[0])
    assert "PII.Location" in found and "PII.PersonName" not in found


# --- postal codes ---------------------------------------------------------------------

ROWS = [
    ("10115", "Germany"),
    ("1010", "Austria"),
    ("1012 AB", "Netherlands"),
    ("75008", "France"),
    ("SW1A 1AA", "United Kingdom"),
    ("28013", "Spain"),
    ("00184", "Italy"),
    ("3000", "Belgium"),
    ("8001", "Switzerland"),
    ("1050-001", "Portugal"),
] * 3


def test_postal_codes_fit_the_country_of_their_row() -> None:
    samples = table({"c1": [c for c, _ in ROWS], "c2": [n for _, n in ROWS]})
    codes, countries = (tags(found) for found in classify_columns(samples))
    assert "PII.PostalCode" in codes
    context = codes["PII.PostalCode"].evidence["context"]
    assert context["sibling_column"] == "c2"
    assert context["rule"] == "fits the postal format of the row's country"
    assert "PII.Location" in countries


def test_codes_that_do_not_fit_their_rows_country_are_not_postal_codes() -> None:
    rng = random.Random(9)
    # four-digit counters beside a country column whose countries use five digits
    samples = table(
        {
            "c1": [str(rng.randint(1000, 9999)) for _ in ROWS],
            "c2": [rng.choice(["Germany", "France", "Spain", "Italy"]) for _ in ROWS],
        }
    )
    assert "PII.PostalCode" not in tags(classify_columns(samples)[0])


def test_digits_next_to_a_street_column_fit_one_countrys_postal_format() -> None:
    f = fake("de_DE")
    samples = table(
        {
            "c0": [f.street_address() for _ in range(30)],
            "c1": [f.postcode() for _ in range(30)],
            "c2": [f.city() for _ in range(30)],
        }
    )
    street, codes, _ = (tags(found) for found in classify_columns(samples))
    assert "PII.Address" in street
    assert codes["PII.PostalCode"].evidence["context"]["country"] == "US" or codes


def test_five_digit_quantities_without_address_context_stay_untagged() -> None:
    rng = random.Random(2)
    samples = table({"c1": [str(rng.randint(10000, 99999)) for _ in range(40)]})
    assert tags(classify_columns(samples)[0]) == {}


# --- birth dates ----------------------------------------------------------------------


def test_a_date_18_to_100_years_before_a_sibling_date_is_a_birth_date() -> None:
    rng = random.Random(4)
    joined = [dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500)) for _ in range(30)]
    born = [
        day - dt.timedelta(days=365 * rng.randint(19, 70) + rng.randint(0, 300)) for day in joined
    ]
    born_tags, joined_tags = (
        tags(found) for found in classify_columns(table({"c3": born, "c4": joined}))
    )
    assert "PII.DateOfBirth" in born_tags
    assert born_tags["PII.DateOfBirth"].evidence["context"]["sibling_column"] == "c4"
    assert "PII.DateOfBirth" not in joined_tags


def test_dates_a_few_years_apart_are_not_birth_dates() -> None:
    rng = random.Random(6)
    shipped = [dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 700)) for _ in range(30)]
    ordered = [day - dt.timedelta(days=rng.randint(1, 30)) for day in shipped]
    for found in classify_columns(table({"c3": ordered, "c4": shipped})):
        assert "PII.DateOfBirth" not in tags(found)


def test_columns_of_different_samples_are_not_read_as_rows_of_one_table() -> None:
    f = fake("de_DE")
    first = ColumnSample("c0", "text", [f.first_name() for _ in range(40)], "t1")
    last = ColumnSample("c1", "text", [f.last_name() for _ in range(40)], "t2")
    found = classify_columns([first, last])
    assert "context" not in json.dumps([s.evidence for s in found[1]])


# --- addresses ------------------------------------------------------------------------

STREETS = [
    "Beskydská 88",
    "Praça de Magalhães, 67",
    "Av. Omar Nuñez N° 6447",
    "Cerkniška ulica 8",
    "Keresztfai utca 92.",
    "Hafnerstrasse 84",
    "Donje Prekrižje 8b",
    "848 Wharetahi Street",
    "Travessa Nascimento, 56",
    "Gg. Monginsidi No. 64",
]


def test_street_addresses_of_many_countries_are_addresses_without_a_column_name() -> None:
    found = tags(classify_columns(table({"c6": STREETS * 3}))[0])
    assert "PII.Address" in found


def test_numbered_things_with_the_same_words_are_not_addresses() -> None:
    names = [f"Fulfilment centre {index:02d}" for index in range(1, 31)]
    assert "PII.Address" not in tags(classify_columns(table({"c2": names}))[0])


# --- JSON -----------------------------------------------------------------------------


def test_json_documents_report_each_sensitive_path() -> None:
    f = fake("en_GB")
    documents = [
        json.dumps(
            {
                "name": f.name(),
                "contact": {"email": f.email(), "phone": f.phone_number()},
                "prefs": {"newsletter": True},
            }
        )
        for _ in range(30)
    ]
    found = tags(classify_columns([ColumnSample("c9", "jsonb", documents, "t4")])[0])
    assert found["PII.Email"].evidence["json_paths"] == ["contact.email"]
    assert found["PII.Phone"].evidence["json_path"] == "contact.phone"
    assert "PII.PersonName" in found
    assert "prefs.newsletter" not in json.dumps([s.evidence for s in found.values()])


# --- phones ---------------------------------------------------------------------------


def test_national_phone_numbers_are_valid_in_the_country_of_their_row() -> None:
    # Colombian mobiles written as bare digits: an id until the row's country says otherwise
    rng = random.Random(8)
    mobiles = [
        f"3{rng.randint(0, 2)}{rng.randint(0, 9)}{rng.randint(10**6, 10**7 - 1)}" for _ in range(20)
    ]
    samples = table({"c3": mobiles, "c9": ["Colombia"] * 20})
    phones = tags(classify_columns(samples)[0])
    context = phones["PII.Phone"].evidence["context"]
    assert context == {"rule": "a valid phone number in the row's country", "sibling_column": "c9"}
    # the same digits beside a column of fruit say nothing
    alone = table({"c3": mobiles, "c9": ["Apple", "Pear"] * 10})
    assert "PII.Phone" not in tags(classify_columns(alone)[0])
