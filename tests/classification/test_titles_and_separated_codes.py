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


# Israeli streets, codes (five digits before 2013, seven since) and small towns
HE_STREETS = ["רחוב הרצל 12", "שדרות רוטשילד 45", "רחוב ביאליק 7", "דרך השלום 103"]
HE_STREETS += ["רחוב הנביאים 28", "סמטת הגפן 3", "רחוב ויצמן 61", "שדרות ירושלים 9"]
HE_CODES = ["6136001", "52520", "4431021", "35254", "9414201", "2020000", "76100", "8410501"]
HE_TOWNS = ["גבעת עדה", "כפר ורדים", "מעלות", "נווה אטי״ב", "קריית טבעון", "שלומי", "עומר"]
HE_TOWNS += ["מצפה רמון"]


def test_a_street_a_postcode_and_a_town_side_by_side_are_found_together() -> None:
    found = classify_columns(
        [
            sample("c0", list(range(100, 108)), "integer"),
            sample("c1", HE_STREETS),
            sample("c2", HE_CODES),
            sample("c3", HE_TOWNS),
        ]
    )
    assert "PII.Address" in tags(found[1])
    assert "PII.PostalCode" in tags(found[2])
    assert "PII.Location" in tags(found[3])
    assert tags(found[2])["PII.PostalCode"].evidence["context"]["joint"]


def test_catalogue_and_inventory_rows_are_not_streets_codes_and_towns() -> None:
    models = ["Air Max 90", "Air Force 1", "Pegasus 40", "Air Max 270", "Blazer 77"]
    models += ["Pegasus 39", "Air Force 2", "Blazer 80"]
    skus = ["48213", "48214", "51730", "51731", "60022", "60023", "71500", "71501"]
    brands = ["Nike", "Nike", "Nike", "Adidas", "Puma", "Nike", "Nike", "Puma"]
    named = [f"{brand} {model}" for brand, model in zip(brands, models, strict=True)]
    bins = ["Aisle 12", "Aisle 7", "Aisle 12", "Aisle 3", "Aisle 9", "Aisle 7", "Aisle 1"]
    bins += ["Aisle 4"]
    stores = ["Lager Nord", "Lager Süd", "Hauptlager", "Lager Nord", "Außenlager"]
    stores += ["Hauptlager", "Lager Süd", "Lager Nord"]
    makers = ["Nike", "Adidas", "Puma", "Asics", "Reebok", "Vans", "Fila", "Saucony"]
    lines = [f"{maker} {model}" for maker, model in zip(makers, models, strict=True)]
    pairs = ((models, brands), (named, brands), (bins, stores), (lines, makers))
    for street, town in pairs:
        found = classify_columns([sample("c0", street), sample("c1", skus), sample("c2", town)])
        # the street detector's own reading of "Air Max 90" is another matter: no column is
        # found by the three together
        assert not [s for column in found for s in column if _joint(s)], town


def _joint(suggestion: TagSuggestion) -> bool:
    return bool((suggestion.evidence.get("context") or {}).get("joint"))


def test_people_beside_codes_and_numbered_lines_are_not_towns() -> None:
    people = ["Sarah Cohen", "David Levi", "Noa Mizrahi", "Yosef Peretz", "Maya Biton"]
    people += ["Avi Friedman", "Tamar Katz", "Daniel Azoulay"]
    wards = ["Ward 3", "Ward 7", "Ward 3", "Ward 12", "Ward 5", "Ward 7", "Ward 1", "Ward 9"]
    found = classify_columns([sample("c0", wards), sample("c1", HE_CODES), sample("c2", people)])
    assert not [s for column in found for s in column if _joint(s)]
