"""Towns from a gazetteer, countries in their own language, names the resource spells without
diacritics, and surnames that are also towns: opaque column names, real values.

Pure Python like test_context.py: the classifier sees a table's columns together.
"""

from __future__ import annotations

import pytest

from classification.classifier import classify_columns
from classification.detectors.address import _address_kind
from classification.detectors.cities import is_place
from classification.detectors.names import value_kind
from classification.detectors.places import country_code
from classification.detectors.postal import postal_fits
from tests.classification.tables import table, tags

POLISH_TOWNS = ["Rybnik", "Malbork", "Łowicz", "Dębica", "Wyszków", "Kędzierzyn-Koźle", "Olsztyn"]
ALPINE_TOWNS = ["Winterthur", "Pully", "Knittelfeld", "Voitsberg", "Lancy", "Ebenfurth", "Muri"]
NORDIC_TOWNS = ["Joensuu", "Närpiö", "Ypäjä", "Kopparberg", "Vetschau", "Hranice", "Blatná"]


def test_towns_from_the_gazetteer_are_locations_without_a_column_name() -> None:
    towns = (POLISH_TOWNS + ALPINE_TOWNS + NORDIC_TOWNS) * 2
    found = tags(classify_columns(table({"c4": towns}))[0])
    assert "PII.Location" in found and "PII.PersonName" not in found
    evidence = found["PII.Location"].evidence
    assert evidence["detectors"] == ["gazetteer"]
    assert evidence["place_only"] > evidence["name_only"]


@pytest.mark.parametrize(
    "town",
    ["г. Сасово", "село Харків", "місто Шахтарське", "속초시", "부천시 원미구", "佛山市", "墨田区"],
)
def test_towns_in_other_scripts_are_known_behind_their_settlement_type(town: str) -> None:
    assert is_place(town)


@pytest.mark.parametrize("word", ["Blue Chair", "Open", "Invoice", "Ergonomic Steel Lamp"])
def test_ordinary_words_are_not_towns(word: str) -> None:
    assert not is_place(word)


def test_a_column_of_first_names_is_not_a_column_of_towns() -> None:
    # Anna, Maria, Florence and Victoria are towns somewhere; a column of them is people.
    firsts = ["Anna", "Maria", "Florence", "Victoria", "Paul", "Sofia", "Elena", "Laura"] * 4
    found = tags(classify_columns(table({"c2": firsts}))[0])
    assert "PII.PersonName" in found and "PII.Location" not in found


def test_spanish_surnames_that_are_also_towns_stay_surnames_beside_first_names() -> None:
    firsts = ["Lucas", "Sofía", "Mateo", "Valentina", "Santiago", "Martina", "Benjamín", "Emma"]
    surnames = ["Torres", "Gómez", "Morales", "Herrera", "Ríos", "Ledesma", "Godoy", "Castro"]
    first, last = classify_columns(table({"c0": firsts * 3, "c1": surnames * 3}))
    found = tags(last)
    assert "PII.PersonName" in found and "PII.Location" not in found
    assert found["PII.PersonName"].evidence["context"]["role"] == "last"
    assert "PII.PersonName" in tags(first)


def test_polish_names_beside_a_street_column_are_names_not_the_streets_towns() -> None:
    firsts = ["Grzegorz", "Ewa", "Tobiasz", "Janina", "Marcelina", "Mariusz", "Aurelia", "Gustaw"]
    surnames = ["Kozon", "Janoszek", "Kurcz", "Małycha", "Duczmal", "Golczyk", "Pera", "Tyniec"]
    roads = ["Długa", "Polna", "Leśna", "Krótka", "Słoneczna", "Lipowa", "Ogrodowa", "Kwiatowa"]
    roads += ["Szkolna", "Parkowa", "Brzozowa", "Łąkowa"]
    streets = [f"ul. {road} {number}" for number, road in enumerate(roads * 2, 3)]
    found = classify_columns(table({"c0": firsts * 3, "c1": surnames * 3, "c2": streets}))
    first, last, street = (tags(f) for f in found)
    for column in (first, last):
        assert "PII.PersonName" in column and "PII.Location" not in column
    assert "PII.Address" in street


def test_surnames_much_more_common_as_surnames_are_surnames() -> None:
    assert value_kind("Torres") == "last"  # ranked 7th as a surname, 1302nd as a given name
    assert value_kind("Peeters") == "last"
    for given in ("Peter", "Simon", "Marta", "Kurt"):
        assert value_kind(given) == "first", given


@pytest.mark.parametrize("name", ["Katarīna", "Elvīra", "Guðmunda"])
def test_given_names_are_found_when_the_resource_spells_them_without_diacritics(
    name: str,
) -> None:
    assert value_kind(name) == "first"


@pytest.mark.parametrize(
    ("written", "code"),
    [("Deutschland", "DE"), ("Россия", "RU"), ("日本", "JP"), ("Ελλάδα", "GR"), ("Sverige", "SE")],
)
def test_countries_written_in_their_own_language_are_resolved(written: str, code: str) -> None:
    assert country_code(written) == code


def test_postal_codes_beside_country_names_in_their_own_language() -> None:
    rows = [
        ("10115", "Deutschland"),
        ("80331", "Deutschland"),
        ("114 55", "Sverige"),
        ("11455", "Sverige"),  # stored without its space
        ("01310-100", "Brasil"),
        ("01310100", "Brasil"),  # stored without its hyphen
        ("00-950", "Polska"),
        ("28013", "España"),
    ] * 3
    codes, countries = (
        tags(f)
        for f in classify_columns(table({"c1": [c for c, _ in rows], "c2": [n for _, n in rows]}))
    )
    assert codes["PII.PostalCode"].evidence["context"]["rule"] == (
        "fits the postal format of the row's country"
    )
    assert "PII.Location" in countries


def test_a_separator_is_restored_only_where_the_country_writes_one() -> None:
    assert postal_fits("11455", "SE") and postal_fits("13570747", "BR")
    assert not postal_fits("1357074", "BR") and not postal_fits("123456", "SE")


@pytest.mark.parametrize(
    "address",
    [
        "경기도 안산시 상록구 석촌호수로 980",
        "전라남도 청주시 서원구 삼성로 756",
        "宜都路8号",
        "河北省海口县海陵郑路b座 827095",
        "3118 Бумов Pine",
        "עגור 13, שדי תרומות, 5686507",
    ],
)
def test_addresses_in_other_scripts_have_a_street_shape(address: str) -> None:
    assert _address_kind(address) is not None


@pytest.mark.parametrize("text", ["12 items shipped today", "3 apples and 2 pears", "宜都路"])
def test_counted_things_and_bare_road_names_are_not_addresses(text: str) -> None:
    assert _address_kind(text) is None


def test_products_dishes_and_companies_are_neither_people_nor_towns() -> None:
    dishes = ["Gaisburger Marsch", "Hutspot", "Cocido maragato", "Klappgröt", "Svíčková"]
    companies = ["Siemens AG", "Getronics N.V.", "Intertex AB", "Drob-Tar sp. z o.o.", "Hama GmbH"]
    products = ["Steel Desk Lamp", "Oak Side Table", "Cotton Throw", "Wool Rug", "Glass Vase"]
    found = classify_columns(
        table({"c0": dishes * 6, "c1": companies * 6, "c2": products * 6}, name="t9")
    )
    for column in found:
        assert not {"PII.PersonName", "PII.Location"} & set(tags(column)), column


@pytest.mark.parametrize("full", ["张秀兰", "雷玉珍", "이지훈", "배성호", "田中太郎"])
def test_names_written_without_a_space_in_dense_scripts_are_full_names(full: str) -> None:
    assert value_kind(full) == "full"


@pytest.mark.parametrize("other", ["佛山市", "墨田区", "株式会社", "속초시", "宜都路"])
def test_towns_firms_and_roads_in_dense_scripts_are_not_names(other: str) -> None:
    assert value_kind(other) is None


def test_a_column_of_korean_full_names_is_person_names() -> None:
    people = ["이지훈", "배성호", "백정남", "노예진", "김민준", "박서연", "최지우", "정하은"] * 3
    assert "PII.PersonName" in tags(classify_columns(table({"c6": people}))[0])
