"""Values written in other scripts and national formats: Cyrillic, Greek, CJK, Polish, Nordic.

Each positive case has a negative twin of the same shape that must stay untagged, so a
detector that tags everything of that shape fails here.
"""

from __future__ import annotations

from collections.abc import Sequence

from classification.classifier import classify_column, classify_columns
from classification.detectors.base import ColumnSample, starts_like_name, without_type_prefix

THRESHOLD = 0.7


def column(name: str, values: Sequence[object], data_type: str = "text") -> ColumnSample:
    return ColumnSample(name=name, data_type=data_type, values=list(values) * 3, table="t")


def tags_of(sample: ColumnSample) -> set[str]:
    return {s.tag for s in classify_column(sample) if s.confidence >= THRESHOLD}


def test_names_in_scripts_without_capitals_start_like_names() -> None:
    assert starts_like_name("陽一") and starts_like_name("Κομνηνή") and starts_like_name("Анна")
    assert not starts_like_name("open") and not starts_like_name("42")


def test_type_words_before_a_name_are_set_aside() -> None:
    assert without_type_prefix("г. Сасово") == "Сасово"
    assert without_type_prefix("aleja Owocowa 850") == "Owocowa 850"
    assert without_type_prefix("the end") == "the end"  # no capital follows: not a type word


CYRILLIC_STREETS = [
    "вулиця Супутників, буд. 699 кв. 2",
    "пер. Лесозаводский, д. 4 к. 57",
    "площа Василя Кандинського 2-й, буд. 749",
    "наб. Громова, д. 9/4 стр. 5",
    "шосе Штильова, буд. 765",
    "пр. Сиреневый, д. 24",
]


def test_cyrillic_street_addresses_are_addresses_by_their_house_number_markers() -> None:
    assert "PII.Address" in tags_of(column("c3", CYRILLIC_STREETS))


def test_cyrillic_words_without_a_house_number_are_not_addresses() -> None:
    words = ["вулиця", "площа Свободи", "наб. реки", "парк", "шосе", "переулок Тихий"]
    assert "PII.Address" not in tags_of(column("c3", words))


def test_japanese_and_korean_addresses_are_addresses() -> None:
    japanese = [
        "新潟県墨田区天神島15丁目25番15号",
        "沖縄県横浜市港南区藤金8丁目24番11号",
        "東京都港区芝公園4丁目2番8号",
    ]
    korean = [
        "서울특별시 강남구 테헤란로 123",
        "부산광역시 해운대구 해운대로 570",
        "대구 중구 동성로 12",
    ]
    assert "PII.Address" in tags_of(column("c1", japanese))
    assert "PII.Address" in tags_of(column("c1", korean))


def test_grouped_postal_lines_make_a_multi_line_address() -> None:
    greek = [
        "Φύσκας 529,\n679 59 Καλαμάτα",
        "Μεγαρέων 08,\nΤΚ 060 51 Μυτιλήνη",
        "Γιαννακουδάκη 6,\nΤΚ 65072 Λευκάδα",
    ]
    assert "PII.Address" in tags_of(column("c2", greek))


def test_nordic_and_polish_street_lines_are_addresses() -> None:
    nordic = ["Myhremarka 6, 8054 Vidarvåg", "Bakkegrenda 48, 0959 Elisabethfoss"]
    polish = ["aleja Owocowa 850", "ul. Wierzbowa 15", "ulica Akacjowa 987"]
    assert "PII.Address" in tags_of(column("c5", nordic + polish))


def test_legal_forms_of_other_scripts_make_organisations_without_a_column_name() -> None:
    companies = [
        "ОАО «Воронцов»",
        "ЗАО «Колесников»",
        "株式会社松本電気",
        "山本印刷有限会社",
        "Materek i syn s.c.",
        "Cop Sp. z o.o. Sp.k.",
    ]
    assert "PII.Organization" in tags_of(column("c7", companies))


def test_first_names_in_their_own_script_are_found_by_frequency() -> None:
    japanese = ["陽一", "花子", "春香", "洋介", "明美", "康弘"]
    found = {s.tag: s for s in classify_column(column("c0", japanese))}
    assert "PII.PersonName" in found
    assert found["PII.PersonName"].evidence["first_names"] >= 4


def test_common_words_in_another_script_are_not_person_names() -> None:
    words = ["Москва", "Россия", "Город", "Улица", "Дом", "Банк"]
    assert "PII.PersonName" not in tags_of(column("c0", words))


def test_a_postcode_column_of_any_national_shape_is_a_postal_code() -> None:
    shapes = ["91417776", "39150-008", "137-9325", "ΤΚ 763 17", "LV-1010", "763 17"]
    assert "PII.PostalCode" in tags_of(column("postcode", shapes))


def test_the_same_digits_under_another_name_are_not_postal_codes() -> None:
    shapes = ["91417776", "39150-008", "137-9325", "76317", "1010", "763 17"]
    assert "PII.PostalCode" not in tags_of(column("amount_ref", shapes))


def test_a_postal_name_outweighs_zip_codes_that_parse_as_phone_numbers() -> None:
    zips = ["27513-1409", "43666-8647", "16550-5809", "52098", "96982-1115", "26122"]
    tags = tags_of(column("postcode", zips))
    assert tags == {"PII.PostalCode"}


def test_hinted_lowercase_settlements_are_locations() -> None:
    cities = ["к. Кунгур", "с. Карабудахкент", "г. Сасово", "г. Петрозаводск", "п. Зарайск"]
    assert "PII.Location" in tags_of(column("city", cities))


def test_a_table_of_cyrillic_people_keeps_names_and_addresses_apart() -> None:
    rows = 12
    samples = [
        ColumnSample("c0", "text", ["Светлана", "Ирина", "Ольга", "Мария"] * (rows // 4), "t"),
        ColumnSample("c1", "text", CYRILLIC_STREETS * (rows // 6), "t"),
    ]
    first, street = classify_columns(samples)
    assert "PII.Address" in {s.tag for s in street if s.confidence >= THRESHOLD}
    assert "PII.Address" not in {s.tag for s in first if s.confidence >= THRESHOLD}
