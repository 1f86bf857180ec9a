"""Addresses, countries, legal forms and postal codes in the national formats that the
stop-13 held-out countries write (Azerbaijan, Georgia, Armenia, Vietnam, Bangladesh,
North Macedonia, Taiwan, Czechia), and the look-alikes that must stay unclassified (issue 17).

The values are written here by hand in each country's format, not taken from a benchmark.
"""

from __future__ import annotations

import random

import pytest

from classification.classifier import classify_columns
from classification.detectors.address import _address_kind
from classification.detectors.base import TagSuggestion
from classification.detectors.legal_forms import has_elf_form
from classification.detectors.names import value_kind
from classification.detectors.places import country_code
from tests.classification.tables import table, tags

# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "Nəsimi ray., Səməd Vurğun küç., b. 14, m. 22",  # Azerbaijan: street, building, flat
        "Binəqədi ray., Azadlıq pr., b. 7",
        "რუსთაველის გამზ. 12",  # Georgia: avenue, then number
        "ჭავჭავაძის ქ. 41, ბათუმი",
        "ք. Գյումրի, Աբովյան փ. 15, բն. 3",  # Armenia: city, street, flat
        "Số 12 Ngõ 45 Phố Huế, Phường Bạch Đằng",  # Vietnam
        "3/14/27 Nguyễn Trãi",  # a lane's and an alley's numbers
        "বাড়ী নং ১২, মিরপুর রোড, ঢাকা",  # Bangladesh: house no., road
        "Илинденска 12б",  # North Macedonia: a letter after the number
        "中山路3段45號",  # Taiwan: 號 for 号
    ],
)
def test_national_address_formats_are_streets(address: str) -> None:
    assert _address_kind(address) is not None


@pytest.mark.parametrize(
    "text",
    ["Phố cổ Hà Nội", "pr review", "ქართული ენა", "Volume 12 of the report, page 7 and 8"],
)
def test_phrases_with_the_same_words_are_not_addresses(text: str) -> None:
    assert _address_kind(text) is None


# --- countries in their own language, official names included -------------------------


@pytest.mark.parametrize(
    ("name", "code"),
    [("Česká republika", "CZ"), ("中華民國", "TW"), ("Республика Казахстан", "KZ")],
)
def test_official_country_names_in_their_language_are_countries(name: str, code: str) -> None:
    assert country_code(name) == code


def test_words_are_still_not_countries() -> None:
    assert country_code("Republika") is None
    assert country_code("Premium") is None


# --- legal forms longer than four words -----------------------------------------------


def test_a_long_legal_form_after_the_firm_s_name_is_a_legal_form() -> None:
    assert has_elf_form("Minh Phát Công ty Trách nhiệm hữu hạn")
    assert not has_elf_form("Trách nhiệm hữu hạn")  # the form alone names no firm
    assert not has_elf_form("The Lord of the Rings and the Return of the King")


# --- integers are postal codes only if all have the country's length -------------------


def _macedonian_rows(numbers: list[int]) -> list[dict[str, TagSuggestion]]:
    columns = table(
        {
            "c0": ["Скопје", "Битола", "Охрид", "Куманово", "Прилеп"] * (len(numbers) // 5),
            "c1": ["North Macedonia"] * len(numbers),
            "c2": numbers,
        }
    )
    return [tags(column) for column in classify_columns(columns)]


def test_loyalty_points_beside_a_country_are_not_postal_codes() -> None:
    rng = random.Random(5)
    # most are four digits long, as North Macedonia's codes are; two are not
    points = [rng.randint(1000, 5000) for _ in range(28)] + [178, 42]
    rng.shuffle(points)
    assert "PII.PostalCode" not in _macedonian_rows(points)[2]


def test_postal_codes_stored_as_integers_are_still_postal_codes() -> None:
    rng = random.Random(6)
    codes = [rng.randint(1000, 7999) for _ in range(30)]
    assert "PII.PostalCode" in _macedonian_rows(codes)[2]


@pytest.mark.parametrize("text", ["PR 2024 campaign", "ray 7 of the sun", "bn 12 units"])
def test_short_street_abbreviations_need_their_dot(text: str) -> None:
    assert _address_kind(text) is None


# --- Georgian: Mkhedruli has no case in use, though Unicode files it as lower case -------


@pytest.mark.parametrize(("name", "kind"), [("ნინო", "first"), ("ბერიძე", "last")])
def test_georgian_names_are_names(name: str, kind: str) -> None:
    assert value_kind(name) == kind
