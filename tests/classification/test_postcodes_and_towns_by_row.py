"""Postcodes, towns, streets and surnames read from their rows (issue 17): codes of one
length with any country's postal layout right beside a street, a country's code written
before the postcode, proper nouns beside a settled postcode as the town, words with a house
number between a postcode and its town as the street, and known surnames beside a settled
name column; phone and house numbers, products, job titles and departments stay unchanged.
"""

from __future__ import annotations

from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample, TagSuggestion
from classification.detectors.postal import postal_fits

THRESHOLD = 0.7
RU_STREETS = [
    "ул. Ленина, 12",
    "ул. Садовая, 7",
    "пр. Мира, 41",
    "ул. Гагарина, 3",
    "ул. Пушкина, 22",
    "пер. Лесной, 80",
    "ул. Советская, 15",
    "ул. Школьная, 1",
]
# Kazakh and Russian codes: six digits, some with a leading zero (no usual format fits them)
RU_CODES = ["050000", "010000", "125009", "190000", "630099", "344002", "620014", "443100"]
RU_TOWNS = ["Алматы", "Астана", "Москва", "Санкт-Петербург", "Новосибирск", "Ростов-на-Дону"]
RU_TOWNS += ["Екатеринбург", "Самара"]
NL_STREETS = [
    "Kerkstraat 12",
    "Dorpsweg 7",
    "Molenlaan 41",
    "Hoofdstraat 3",
    "Schoolstraat 22",
    "Nieuwe Weg 80",
    "Julianalaan 15",
    "Beatrixstraat 1",
]
NL_CODES = ["1234 AB", "8471 KL", "9351 PT", "7722 BC", "3411 XZ", "6262 NA", "8833 KD", "5524 AL"]
# hamlets and new estates no gazetteer of towns of 1,000 people lists
HAMLETS = ["Hauwertveen", "Luntersheide", "Molkwarder", "Engeburen", "Wolfhagendam"]
HAMLETS += ["Harpelwier", "Eekwerd aan de IJssel", "Knuitershoek"]


def sample(name: str, values: list[object], data_type: str = "text") -> ColumnSample:
    return ColumnSample(name, data_type, values, "t9")


def tags(suggestions: list[TagSuggestion]) -> dict[str, TagSuggestion]:
    return {s.tag: s for s in suggestions if s.confidence >= THRESHOLD}


def test_six_digit_codes_of_other_countries_beside_a_street_are_postcodes() -> None:
    found = classify_columns(
        [sample("c0", RU_STREETS), sample("c1", RU_CODES), sample("c2", RU_TOWNS)]
    )
    postal = tags(found[1])["PII.PostalCode"].evidence["context"]
    assert postal["layout_only"] and postal["sibling_column"] == "c0"


def test_the_layout_of_other_countries_counts_only_right_beside_the_place() -> None:
    members = ["050001", "010233", "125404", "190781", "630562", "344951", "620307", "443872"]
    found = classify_columns(
        [sample("c0", members), sample("c1", list(range(8)), "integer"), sample("c2", RU_STREETS)]
    )
    assert "PII.PostalCode" not in tags(found[0])


def test_a_country_code_written_before_the_postcode_fits_that_country() -> None:
    assert postal_fits("LV1010", "LV") and postal_fits("LV-1010", "LV")
    assert postal_fits("SE 114 55", "SE")
    assert not postal_fits("LV10101", "LV") and not postal_fits("EE1010", "LV")


def test_latvian_codes_written_with_and_without_their_dash_beside_a_street() -> None:
    streets = ["Brīvības iela 12", "Elizabetes iela 7", "Krasta iela 41", "Tērbatas iela 3"]
    streets += ["Kalnciema iela 22", "Maskavas iela 80", "Valdemāra iela 15", "Rīgas iela 1"]
    codes = ["LV-1010", "LV1050", "LV-3601", "LV4201", "LV-2101", "LV5401", "LV-1001", "LV3001"]
    found = classify_columns([sample("c0", streets), sample("c1", codes)])
    assert "PII.PostalCode" in tags(found[1])


def test_local_phone_numbers_beside_a_street_stay_phone_numbers() -> None:
    phones = ["512 345 678", "601 223 344", "698 112 233", "535 778 901", "724 556 120"]
    phones += ["887 120 334", "505 667 889", "669 001 223"]
    found = classify_columns([sample("c0", NL_STREETS), sample("c1", phones)])
    assert "PII.PostalCode" not in tags(found[1])


def test_house_numbers_of_several_lengths_beside_a_street_are_not_postcodes() -> None:
    numbers = ["12", "7", "141", "3", "2210", "80", "15", "1"]
    streets = [street.rsplit(" ", 1)[0] for street in NL_STREETS]
    found = classify_columns([sample("c0", streets), sample("c1", numbers), sample("c2", RU_CODES)])
    assert "PII.PostalCode" not in tags(found[1])


def test_proper_nouns_beside_a_postcode_in_a_table_with_addresses_are_the_town() -> None:
    found = classify_columns(
        [sample("c0", NL_STREETS), sample("c1", NL_CODES), sample("c2", HAMLETS)]
    )
    town = tags(found[2])["PII.Location"].evidence["context"]
    assert town["sibling_column"] == "c1" and "postcode" in town["rule"]


def test_without_an_address_a_column_beside_codes_is_not_a_town() -> None:
    found = classify_columns([sample("c0", NL_CODES), sample("c1", HAMLETS)])
    assert "PII.Location" not in tags(found[1])


def test_product_names_and_job_titles_beside_a_postcode_are_not_towns() -> None:
    products = ["Handcrafted Granite Shoes", "Small Steel Chair", "Rustic Wooden Table"]
    products += ["Sleek Cotton Gloves", "Ergonomic Rubber Mouse", "Practical Frozen Pizza"]
    products += ["Licensed Fresh Bacon", "Gorgeous Metal Keyboard"]
    titles = ["Senior Data Engineer", "Chief Marketing Officer", "Lead Product Designer"]
    titles += ["Regional Sales Manager", "Junior Account Executive", "Head Of Customer Care"]
    titles += ["Principal Software Architect", "Senior Finance Analyst"]
    for others in (products, titles):
        found = classify_columns(
            [sample("c0", NL_STREETS), sample("c1", NL_CODES), sample("c2", others)]
        )
        assert "PII.Location" not in tags(found[2])


# Israeli lines with the entrance letter after the house number, which the street shapes
# do not read; the codes and towns around them are settled.
HE_STREETS = ["הרצל 12 א", "רוטשילד 45 ב", "ויצמן 7 ג", "בן גוריון 103 א", "ז'בוטינסקי 22 ב"]
HE_STREETS += ["אחד העם 80 א", "הנביאים 15 ד", "יפו 1 ב"]
HE_CODES = ["6713401", "6525202", "4428103", "5225504", "5250305", "6578706", "9510107", "9422208"]
HE_TOWNS = ["תל אביב-יפו", "ירושלים", "חיפה", "באר שבע", "נתניה", "גבעתיים", "רעננה", "הרצליה"]


def test_words_with_a_house_number_beside_a_postcode_and_its_town_are_the_address() -> None:
    found = classify_columns(
        [sample("c0", HE_STREETS), sample("c1", HE_CODES), sample("c2", HE_TOWNS)]
    )
    address = tags(found[0])["PII.Address"].evidence["context"]
    assert address["sibling_column"] == "c1" and "town" in address["rule"]
    assert "PII.PostalCode" in tags(found[1]) and "PII.Location" in tags(found[2])


def test_numbered_labels_or_a_missing_town_do_not_make_an_address() -> None:
    wards = ["מחלקה 3", "מחלקה 7", "מחלקה 3", "מחלקה 12", "מחלקה 7", "מחלקה 1", "מחלקה 3"]
    wards += ["מחלקה 9"]
    found = classify_columns([sample("c0", wards), sample("c1", HE_CODES), sample("c2", HE_TOWNS)])
    assert "PII.Address" not in tags(found[0])
    # without a settled town the codes are not settled either, nor the lines beside them
    found = classify_columns([sample("c0", HE_STREETS), sample("c1", HE_CODES)])
    assert "PII.Address" not in tags(found[0])


# Vietnamese given names of two syllables are no single tokens: the first/last pair rule
# cannot pair them with the surname column beside them.
VI_GIVEN = ["Thanh Tâm", "Minh Khôi", "Bảo Ngọc", "Gia Huy", "Phương Linh", "Quốc Bảo"]
VI_GIVEN += ["Ngọc Anh", "Đức Minh"]
VI_FAMILY = ["Đào", "Trịnh", "Tô", "Dương", "Lâm", "Vương", "Hồ", "Phan"]


def test_known_surnames_beside_a_settled_name_column_are_names() -> None:
    found = classify_columns([sample("c0", VI_GIVEN), sample("c1", VI_FAMILY)])
    surname = tags(found[1])["PII.PersonName"].evidence["context"]
    assert surname["sibling_column"] == "c0"


def test_categories_and_departments_beside_a_name_column_are_not_names() -> None:
    aisles = ["Dairy", "Bakery", "Frozen", "Produce", "Beverages", "Snacks", "Household"]
    aisles += ["Canned"]
    units = ["Cardiology", "Oncology", "Radiology", "Neurology", "Pediatrics", "Orthopedics"]
    units += ["Urology", "Dermatology"]
    for others in (aisles, units):
        found = classify_columns([sample("c0", VI_GIVEN), sample("c1", others)])
        assert "PII.PersonName" not in tags(found[1])


# Dhivehi names in Thaana, which the name index does not list, and their addresses
DV_GIVEN = ["ދާއޫދު", "އަޙްމަދު", "މަރްޔަމް", "ޢާއިޝަތު", "މުޙައްމަދު", "ފާޠިމަތު", "އިބްރާހީމް", "ޙަސަން"]
DV_FAMILY = ["ރަޝީދު", "ނާޞިރު", "ޝަރީފް", "ލަޠީފް", "ޙަލީމް", "ޒާހިރު", "ސަލީމް", "ނަސީމް"]
DV_MAILS = ["dhaaoodhu.rasheedhu@mail.mv", "ahmadhu.naasiru1@mail.mv", "maryam_shareef@mail.mv"]
DV_MAILS += [
    "aaishathu.latheef@mail.mv",
    "muhamadhu.haleem7@mail.mv",
    "faathimathu.zaahiru@mail.mv",
]
DV_MAILS += ["ibraaheem.saleem@mail.mv", "hasan.naseem90@mail.mv"]


def test_names_the_rows_email_address_spells_are_person_names() -> None:
    found = classify_columns(
        [sample("c0", DV_GIVEN), sample("c1", DV_FAMILY), sample("c2", DV_MAILS)]
    )
    for position in (0, 1):
        context = tags(found[position])["PII.PersonName"].evidence["context"]
        assert context["sibling_column"] == "c2" and "e-mail" in context["rule"]
    alone = classify_columns([sample("c0", DV_GIVEN), sample("c1", DV_FAMILY)])
    assert "PII.PersonName" not in tags(alone[0]) and "PII.PersonName" not in tags(alone[1])


def test_a_role_mailbox_does_not_make_its_department_a_name() -> None:
    departments = ["Sales", "Support", "Billing", "Marketing", "Research", "Logistics"]
    departments += ["Finance", "Legal"]
    mailboxes = [f"{department.lower()}@acme.example" for department in departments]
    found = classify_columns([sample("c0", departments), sample("c1", mailboxes)])
    assert "PII.PersonName" not in tags(found[0])
