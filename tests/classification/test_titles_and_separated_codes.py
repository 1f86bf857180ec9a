"""Issue 17, rows without column names: courtesy titles and suffixes around a name
("Dr. …", "… k-dze", "محترم. …", "… Jr.") are read off before the name index; codes
written with the separator their country's format requires ("123-4567", Japan) right beside
the address are its postcode, not a phone. Guards: a title alone is no name,
names that are also titles somewhere (Sen, Jun) are kept, and phone numbers away from an
address stay phones.
"""

from __future__ import annotations

from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample, TagSuggestion
from classification.detectors.honorifics import without_honorifics
from classification.detectors.names import name_tokens_of, value_kind

THRESHOLD = 0.7
JP_STREETS = ["千代田1-1", "丸の内2-7-3", "新宿3-38-1", "梅田1-13-1", "栄3-5-12", "天神2-11-3"]
JP_STREETS += ["中央1-4-1", "本町4-1-14"]
JP_TOWNS = ["東京都", "大阪市", "名古屋市", "札幌市", "福岡市", "横浜市", "神戸市", "京都市"]
JP_CODES = ["100-0001", "530-0001", "460-0008", "060-0001", "810-0001", "220-0011"]
JP_CODES += ["650-0001", "604-8571"]
EN_STREETS = ["12 Baker Street", "7 High Street", "41 Church Road", "3 Mill Lane"]
EN_STREETS += ["22 Station Road", "80 Park Avenue", "15 King Street", "1 Queen's Road"]


def sample(name: str, values: list[object], data_type: str = "text") -> ColumnSample:
    return ColumnSample(name, data_type, values, "t8")


def tags(suggestions: list[TagSuggestion]) -> dict[str, TagSuggestion]:
    return {s.tag: s for s in suggestions if s.confidence >= THRESHOLD}


def test_titles_before_and_after_a_name_are_read_off() -> None:
    assert name_tokens_of("Sīle Vilhelmīne k-dze") == ["Sīle", "Vilhelmīne"]
    assert name_tokens_of("محترم. محسن جان") == ["محسن", "جان"]
    assert value_kind("Sra. Ana Gómez") == "full"
    assert value_kind("John Smith Jr.") == "full"
    assert value_kind("Herr Thomas Müller") == "full"


def test_a_title_alone_or_a_name_like_title_stays_as_it_is() -> None:
    assert name_tokens_of("Dr.") is None
    assert without_honorifics(["Mr", "Mrs"]) == ["Mrs"]
    # Sen and Jun are surnames and given names: never read off
    assert without_honorifics(["Amartya", "Sen"]) == ["Amartya", "Sen"]
    assert without_honorifics(["Li", "Jun"]) == ["Li", "Jun"]


def test_contact_names_with_titles_are_person_names() -> None:
    people = ["Dr. Anna Schmidt", "Mr. John Miller", "Mrs. Mary Johnson", "Frau Eva Braun"]
    people += ["Prof. Peter Wagner", "Ms. Laura Davis", "Herr Klaus Weber", "Dr. Maria Garcia"]
    people += ["Sra. Ana López", "Mme. Claire Martin"]
    found = classify_columns([sample("c0", people), sample("c1", list(range(10)), "integer")])
    assert "PII.PersonName" in tags(found[0])


def test_japanese_postcodes_beside_the_address_are_not_phones() -> None:
    found = classify_columns(
        [sample("c0", JP_STREETS), sample("c1", JP_CODES), sample("c2", JP_TOWNS)]
    )
    assert "PII.PostalCode" in tags(found[1])
    assert "PII.Phone" not in tags(found[1])


def test_local_numbers_away_from_an_address_stay_phones() -> None:
    numbers = ["555-0101", "555-0187", "555-0123", "555-0199", "555-0145", "555-0160"]
    numbers += ["555-0111", "555-0172"]
    found = classify_columns(
        [sample("c0", EN_STREETS), sample("c1", list(range(8)), "integer"), sample("c2", numbers)]
    )
    assert "PII.PostalCode" not in tags(found[2])
