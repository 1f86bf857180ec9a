"""Values the detectors must read whatever script or national format they are in, and the
look-alikes they must leave alone: opaque column names throughout (issue 17).

Pure Python like test_context.py: the classifier sees a table's columns together.
"""

from __future__ import annotations

import pytest

from classification.classifier import classify_columns
from classification.detectors.address import _address_kind
from classification.detectors.base import without_marks
from classification.detectors.names import _patronymic, name_tokens_of, value_kind
from classification.detectors.phone import _phone_grade
from classification.detectors.places import country_code
from tests.classification.tables import table, tags

# --- combining marks: Indic vowel signs, Persian zero-width non-joiner ----------------


@pytest.mark.parametrize("name", ["यादव", "प्रधान", "சத்யா", "ایمان\u200cزاده", "ශ්\u200dරී"])
def test_names_with_vowel_signs_or_joiners_are_name_shaped(name: str) -> None:
    # \w stops at a vowel sign: before, every Devanagari or Tamil name failed the shape test
    assert name_tokens_of(name) == [name]


def test_without_marks_only_drops_marks() -> None:
    assert without_marks("यादव") == "यदव"
    assert without_marks("Müller") == "Müller"  # precomposed letters are letters
    assert without_marks("ایمان\u200cشهر") == "ایمانشهر"


def test_a_devanagari_surname_the_index_knows_is_a_surname() -> None:
    assert value_kind("यादव") == "last"


# --- names written in another script, looked up by their romanisation -----------------


@pytest.mark.parametrize("name", ["Станіслава", "Асия", "영은", "子瑶"])
def test_given_names_in_their_own_script_are_first_names(name: str) -> None:
    assert value_kind(name) == "first"


@pytest.mark.parametrize("syllable", ["巴", "史", "태"])
def test_one_syllable_is_not_looked_up_by_its_romanisation(syllable: str) -> None:
    # "Ba" or "Shi" is some name somewhere: a lone syllable proves nothing
    assert value_kind(syllable) is None


@pytest.mark.parametrize("surname", ["Akmalov", "Islomov", "Ашимов", "Бекжанова", "Beridze"])
def test_surnames_made_from_a_given_name_are_surnames(surname: str) -> None:
    assert _patronymic(surname)
    assert value_kind(surname) == "last"


@pytest.mark.parametrize("word", ["Lesson", "Prison", "Person", "Italian", "Canadian", "Music"])
def test_words_ending_like_a_patronymic_are_not_patronymics(word: str) -> None:
    assert not _patronymic(word)


# --- countries and codes ----------------------------------------------------------------


def test_a_three_letter_country_name_in_arabic_is_a_location() -> None:
    found = tags(classify_columns(table({"c3": ["مصر"] * 12}))[0])
    assert "PII.Location" in found


@pytest.mark.parametrize("word", ["Lie", "Per", "Ben", "Can"])
def test_capitalised_words_are_not_country_codes(word: str) -> None:
    assert country_code(word) is None
    assert country_code(word.upper()) is not None


# --- first and last names beside other single-word columns -----------------------------

NORWEGIAN_FIRSTS = ["Ole", "Kari", "Lars", "Ingrid", "Per", "Astrid", "Knut", "Sigrid"]
NORWEGIAN_SURNAMES = ["Larsen", "Lie", "Bakke", "Haugen", "Berg", "Dahl", "Moen", "Strand"]
OCCUPATIONS = ["Sjåfør", "Lærer", "Snekker", "Elektriker", "Sykepleier", "Kokk", "Maler", "Baker"]


def test_a_surname_column_with_a_code_like_name_pairs_with_first_names() -> None:
    # "Lie" is Liechtenstein's alpha-3 code in lower case: it must not veto the whole column
    first, last, jobs = classify_columns(
        table({"c0": NORWEGIAN_FIRSTS * 2, "c1": NORWEGIAN_SURNAMES * 2, "c2": OCCUPATIONS * 2})
    )
    found = tags(last)
    assert "PII.PersonName" in found
    assert found["PII.PersonName"].evidence["context"]["role"] == "last"
    assert "PII.PersonName" in tags(first)
    assert "PII.PersonName" not in tags(jobs)


def test_uzbek_surnames_pair_with_first_names_by_their_patronymic_form() -> None:
    firsts = ["Anvar", "Jamshid", "Dilnoza", "Aziz", "Gulnora", "Akmal", "Rustam", "Nodira"]
    surnames = ["Akmalov", "Rustamova", "Islomov", "Azizov", "Anvarova", "Jamshidov", "Bek", "Ali"]
    first, last = classify_columns(table({"c0": firsts * 2, "c1": surnames * 2}))
    assert "PII.PersonName" in tags(first)
    assert "PII.PersonName" in tags(last)
    assert "PII.Location" not in tags(last)


# --- places beside an address: one town column per address ------------------------------

STREETS = [
    "Storgata 12",
    "Kirkeveien 4",
    "Bygdøy allé 23",
    "Parkveien 8",
    "Thereses gate 41",
    "Markveien 3",
    "Ullevålsveien 17",
    "Sognsveien 70",
]
TOWNS = ["Hamar", "Tromsø", "Bodø", "Drammen", "Skien", "Halden", "Molde", "Larvik"]


def test_an_occupation_column_beside_an_address_and_its_town_is_not_a_place() -> None:
    street, town, jobs = classify_columns(
        table({"c0": STREETS * 2, "c1": TOWNS * 2, "c2": OCCUPATIONS * 2})
    )
    assert "PII.Address" in tags(street)
    assert "PII.Location" in tags(town)
    assert "PII.Location" not in tags(jobs)


# --- phone numbers, postal codes and addresses in national formats -----------------------


def test_international_numbers_of_a_wrong_national_length_are_possible_phones() -> None:
    assert _phone_grade("+351 29 3957 6462", hinted=False)[0] == 1
    assert _phone_grade("+421-404-797-2576", hinted=False)[0] == 1
    numbers = [f"+351 {20 + i} {3957 + i * 7} {6462 - i * 3}" for i in range(12)]
    assert "PII.Phone" in tags(classify_columns(table({"c5": numbers}))[0])


@pytest.mark.parametrize("text", ["+999 123 456 789", "+1 2", "+7 12"])
def test_plus_signs_without_a_calling_code_or_digits_are_not_phones(text: str) -> None:
    assert _phone_grade(text, hinted=False)[0] == 0


def test_iranian_postal_codes_beside_the_country_are_postal_codes_not_phones() -> None:
    codes = [f"{13496 + i * 811:05d}-{73780 - i * 977:05d}" for i in range(10)]
    code, _country = classify_columns(table({"c8": codes, "c10": ["ایران"] * 10}))
    found = tags(code)
    assert "PII.PostalCode" in found and "PII.Phone" not in found


def test_a_member_number_named_as_one_is_not_a_postal_code() -> None:
    numbers = [str(100_000 + (i * 7919) % 900_000) for i in range(12)]
    member, _country = classify_columns(
        table({"member_no": numbers, "country": ["Россия"] * 12}, name="members")
    )
    assert "PII.PostalCode" not in tags(member)


@pytest.mark.parametrize(
    "address",
    ["6/9 सैनी", "87/095 राजीव कपूर", "5 मिश्रा\nबहादुरगंज-225260", "75 मिस्त्री\nदेवास 415555"],
)
def test_indian_house_and_plot_numbers_and_pin_lines_are_addresses(address: str) -> None:
    assert _address_kind(address) == "street"


@pytest.mark.parametrize("text", ["3/4", "12/05", "2024/25", "1/2 - 225260"])
def test_fractions_and_ranges_are_not_addresses(text: str) -> None:
    assert _address_kind(text) is None
