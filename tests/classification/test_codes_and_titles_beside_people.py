"""Opaque columns of people and vendor tables as other countries write them: postal codes
that also parse as phone numbers, record numbers that only look like postcodes, and
catalogue columns (products, job titles) that the English model reads as names or firms.

Pure Python like test_context.py: the classifier sees a table's columns together.
"""

from __future__ import annotations

import random

from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample, TagSuggestion

THRESHOLD = 0.7


def table(columns: list[list[str]]) -> list[ColumnSample]:
    return [
        ColumnSample(name=f"c{i}", data_type="text", values=values, table="t4")
        for i, values in enumerate(columns)
    ]


def tags(suggestions: list[TagSuggestion]) -> set[str]:
    return {s.tag for s in suggestions if s.confidence >= THRESHOLD}


STREETS_BR = [
    "Rua das Flores 120",
    "Avenida Paulista 1578",
    "Rua Augusta 45",
    "Alameda Santos 900",
    "Rua Oscar Freire 310",
    "Avenida Brasil 2200",
    "Rua XV de Novembro 88",
    "Rua da Consolação 1500",
    "Avenida Atlântica 1702",
    "Rua Direita 12",
]
CITIES_BR = [
    "São Paulo",
    "Rio de Janeiro",
    "Belo Horizonte",
    "Curitiba",
    "Porto Alegre",
    "Salvador",
    "Recife",
    "Fortaleza",
    "Campinas",
    "Florianópolis",
]


def test_brazilian_postal_codes_beside_an_address_are_not_phone_numbers() -> None:
    # "01310-200" also reads as a German number (area code 01310): every code in Brazil's
    # five-dash-three layout beside a street and a town is a CEP
    rng = random.Random(3)
    codes = [f"{rng.randint(1000, 99999):05d}-{rng.randint(0, 999):03d}" for _ in range(20)]
    streets, cities = (rng.choices(pool, k=20) for pool in (STREETS_BR, CITIES_BR))
    found = classify_columns(table([streets, codes, cities]))
    assert tags(found[1]) == {"PII.PostalCode"}
    assert found[1][0].evidence["context"]["country"] == "BR"


def test_phone_numbers_of_several_lengths_beside_an_address_stay_phone_numbers() -> None:
    rng = random.Random(5)
    phones = [
        f"0{rng.choice(['30', '89', '221', '6221', '35204'])}-{rng.randint(10**5, 10**8)}"
        for _ in range(20)
    ]
    streets, cities = (rng.choices(pool, k=20) for pool in (STREETS_BR, CITIES_BR))
    found = classify_columns(table([streets, phones, cities]))
    assert tags(found[1]) == {"PII.Phone"}


def test_seven_digit_record_numbers_away_from_the_address_are_not_postcodes() -> None:
    # "7369432" is Japan's "736-9432" without its dash, but so is any patient number: bare
    # digits need the column beside the address, where schemas keep the postcode
    rng = random.Random(7)
    numbers = [f"{rng.randint(0, 9_999_999):07d}" for _ in range(20)]
    streets, cities = (rng.choices(pool, k=20) for pool in (STREETS_BR, CITIES_BR))
    blood = rng.choices(["A+", "B-", "O+", "AB-"], k=20)
    found = classify_columns(table([numbers, blood, streets, cities]))
    assert "PII.PostalCode" not in tags(found[0])


def test_japanese_postcodes_stored_without_their_dash_beside_the_address_still_count() -> None:
    rng = random.Random(7)
    codes = [f"{rng.randint(100, 999)}{rng.randint(0, 9999):04d}" for _ in range(20)]
    streets, cities = (rng.choices(pool, k=20) for pool in (STREETS_BR, CITIES_BR))
    found = classify_columns(table([streets, codes, cities]))
    assert "PII.PostalCode" in tags(found[1])


# --- towns beside an address -----------------------------------------------------------

STREETS_VN = ["12 Lê Lợi", "45 Trần Hưng Đạo", "7 Nguyễn Huệ", "88 Hai Bà Trưng", "3 Lý Thái Tổ"]
TOWNS_VN = [
    "Vũng Tàu",
    "Sóc Trăng",
    "Long Xuyên",
    "Biên Hòa",
    "Mỹ Tho",
    "Quy Nhơn",
    "Vinh",
    "Thanh Hóa",
    "Tân Uyên",
    "An Nhơn",
]
FULL_NAMES_VN = [
    "Nguyễn Văn An",
    "Trần Thị Lan",
    "Lê Minh Tuấn",
    "Phạm Thu Hà",
    "Hoàng Đức Anh",
    "Vũ Thị Mai",
    "Đặng Quốc Bảo",
    "Bùi Thanh Hương",
]


def test_vietnamese_towns_beside_an_address_are_places_not_people() -> None:
    # made of the syllables of given names, which the English model reads as PERSON
    rng = random.Random(11)
    found = classify_columns(table([rng.choices(STREETS_VN, k=20), rng.choices(TOWNS_VN, k=20)]))
    assert tags(found[1]) == {"PII.Location"}


def test_vietnamese_full_names_beside_an_address_stay_people() -> None:
    rng = random.Random(11)
    found = classify_columns(
        table([rng.choices(STREETS_VN, k=20), rng.choices(FULL_NAMES_VN, k=20)])
    )
    assert tags(found[1]) == {"PII.PersonName"}


def test_swiss_towns_the_gazetteer_knows_are_not_also_people() -> None:
    # the English model reads Chur, Schwyz, Arbon as PERSON half of the time
    towns = [
        "Nyon",
        "Illnau-Effretikon",
        "Schwyz",
        "Chur",
        "Baden",
        "Grenchen",
        "Arbon",
        "Wädenswil",
        "Rheinfelden",
        "Muri bei Bern",
        "Grenchen",
        "Mendrisio",
        "Montreux",
        "Wädenswil",
        "Zürich",
    ]
    found = classify_columns(table([[f"W-{i}" for i in range(15)], towns]))
    assert tags(found[1]) == {"PII.Location"}


def test_zulu_town_names_with_their_class_prefix_beside_an_address_are_places() -> None:
    # eKapa (Cape Town), uTshwane, umGungundlovu: not in the gazetteer, written in lower case
    towns = [
        "Stellenbosch",
        "uTshwane",
        "eKapa",
        "Polokwane",
        "Stellenbosch",
        "Kimberley",
        "Stellenbosch",
        "Rustenburg",
        "Stellenbosch",
        "Pretoria",
        "umGungundlovu",
        "eGoli",
        "Bloemfontein",
        "eGoli",
        "umGungundlovu",
    ]
    streets = ["12 Long Street", "5 Church Street", "88 Main Road", "3 Voortrekker Road"]
    found = classify_columns(table([random.Random(4).choices(streets, k=15), towns]))
    assert tags(found[1]) == {"PII.Location"}


def test_lower_case_words_beside_an_address_are_not_places() -> None:
    words = ["eBay", "iPhone", "emails", "umbrella", "kwanza", "orders", "items", "ukulele"]
    streets = ["12 Long Street", "5 Church Street", "88 Main Road", "3 Voortrekker Road"]
    rng = random.Random(4)
    found = classify_columns(table([rng.choices(streets, k=20), rng.choices(words, k=20)]))
    assert "PII.Location" not in tags(found[1])


# --- legal forms the ELF list does not have ----------------------------------------------

GEORGIAN_FIRMS = [
    "შპს სოფო",
    "შპს კოპაძე-კოპაძე",
    "სს ჯავახი სტუდია",
    "ააიპ უჩა",
    "სს ლიქოკელი ჯგუფი",
    "ააიპ ზინა",
    "შპს ბერიძე",
    "სპს გელაშვილი და ძმები",
]
GEORGIAN_PEOPLE = [
    "გიორგი ბერიძე",
    "ნინო კაპანაძე",
    "დავით გელაშვილი",
    "მარიამ ლომიძე",
    "ლევან ჯავახიშვილი",
    "თამარ მაისურაძე",
    "ზურაბ კვარაცხელია",
]


def test_georgian_firms_with_their_legal_forms_are_organisations() -> None:
    rng = random.Random(6)
    found = classify_columns(
        table([rng.choices(GEORGIAN_PEOPLE, k=15), rng.choices(GEORGIAN_FIRMS, k=15)])
    )
    assert "PII.Organization" in tags(found[1])
    assert "PII.Organization" not in tags(found[0])


def test_vietnamese_firms_written_cty_are_organisations() -> None:
    firms = [
        "Cty TNHH Lâm",
        "Cty Nguyễn",
        "Cty CP Minh Phát",
        "Cty TNHH Vương",
        "Cty Đỗ",
        "Cty TNHH Hoàng Long",
        "Cty Trần",
    ]
    found = classify_columns(table([random.Random(6).choices(firms, k=15)]))
    assert tags(found[0]) == {"PII.Organization"}


# --- Latvian names, inflected ------------------------------------------------------------

LATVIAN_GIVEN = [
    "Ermīns",
    "Oļģerts",
    "Armīns",
    "Emīls",
    "Boļeslavs",
    "Ēriks",
    "Luīze",
    "Rūdolfs",
    "Līvija",
    "Lūcija",
    "Rūta",
    "Edgars",
]
LATVIAN_FAMILY = [
    "Freimane",
    "Kalējs",
    "Putniņš",
    "Petrovskis",
    "Bērziņš",
    "Kalniņa",
    "Ozoliņš",
    "Liepiņa",
    "Krūmiņš",
    "Vītola",
    "Strautiņa",
    "Teicāne",
]
LATVIAN_TOWNS = [
    "Valka",
    "Tukums",
    "Viļāni",
    "Cesvaine",
    "Durbe",
    "Ķegums",
    "Sabile",
    "Bauska",
    "Aknīste",
    "Līvāni",
    "Rīga",
    "Lielvārde",
]


def test_latvian_given_and_family_names_in_their_inflected_forms_are_names() -> None:
    # Emīls is Emil with the masculine -s, Kalniņa the feminine of Kalniņš
    rng = random.Random(8)
    ward = [f"W-{rng.randint(1, 40)}" for _ in range(15)]
    found = classify_columns(
        table([ward, rng.choices(LATVIAN_GIVEN, k=15), rng.choices(LATVIAN_FAMILY, k=15)])
    )
    assert tags(found[1]) == {"PII.PersonName"} and tags(found[2]) == {"PII.PersonName"}


def test_latvian_towns_and_words_are_not_inflected_names() -> None:
    rng = random.Random(8)
    words = [
        "Datoru",
        "Rūpniecības",
        "Apģerba",
        "Rotaļlietu",
        "Zīdaiņu",
        "Skaistuma",
        "Spēļu",
        "Dārzkopības",
        "Bakaleja",
    ]
    found = classify_columns(table([rng.choices(LATVIAN_TOWNS, k=15), rng.choices(words, k=15)]))
    assert "PII.PersonName" not in tags(found[0]) | tags(found[1])


# --- job titles ----------------------------------------------------------------------

TITLES = {
    "en": [
        "Corporate Program Planner",
        "District Response Administrator",
        "National Research Facilitator",
        "Corporate Communications Executive",
        "Dynamic Mobility Producer",
        "Principal Web Coordinator",
        "Global Data Analyst",
        "Regional Interactions Orchestrator",
        "Forward Web Assistant",
        "Regional Operations Strategist",
        "Central Optimization Strategist",
        "Investor Division Executive",
        "Future Data Coordinator",
        "Human Security Director",
    ],
    "el": [
        "Senior Τακτική Συντονιστή",
        "Επενδυτής Έρευνα Εκπρόσωπος",
        "Senior Τακτική Συντονιστής",
        "Εταιρείες Ταυτότητα Παραγωγός",
        "Πελάτης Υποδομή Ειδικός",
        "Πελάτης Λύσεις Συνεργάτης",
        "Κύριος Επικοινωνίες Εκπρόσωπος",
        "Πελάτης Ποιότητα Επόπτης",
        "Senior Εφαρμογή Τεχνικός",
        "Κύριος Μετρήσεις Συνεργάτης",
        "Senior Βελτιστοποίηση Συντονιστή",
    ],
    "pt": [
        "Legado Marca Gerente",
        "Regional Criativo Executivo",
        "Futuro Criativo Analista",
        "Produto Marca Representante",
        "Produto Aplicações Produtor",
        "Líder Soluções Engenheiro",
        "Cliente Funcionalidade Planejador",
        "Cliente Identidade Engenheiro",
        "Produto Intranet Gerente",
        "Cliente Comunicações Facilitador",
    ],
}
PEOPLE = [
    "Anna Müller",
    "Jonas Weber",
    "Lea Schneider",
    "Paul Fischer",
    "Mia Bauer",
    "Felix Wagner",
    "Emma Becker",
]


def test_job_titles_are_neither_people_nor_firms() -> None:
    # the English model reads them as PERSON or ORG: titles of one role noun each
    for titles in TITLES.values():
        rng = random.Random(12)
        found = classify_columns(table([rng.choices(PEOPLE, k=15), rng.choices(titles, k=15)]))
        assert "PII.PersonName" in tags(found[0])
        assert not tags(found[1]) & {"PII.PersonName", "PII.Organization"}, titles[0]


def test_firms_and_people_with_role_words_nearby_stay_firms_and_people() -> None:
    firms = [
        "Müller Consulting GmbH",
        "Agentur Schmidt GmbH",
        "Bauer Architekten AG",
        "Weber & Partner KG",
        "Schneider Technik GmbH",
        "Fischer Beratung AG",
    ]
    rng = random.Random(12)
    firms_found, people_found = classify_columns(
        table([rng.choices(firms, k=15), rng.choices(PEOPLE, k=15)])
    )
    assert "PII.Organization" in tags(firms_found)
    assert "PII.PersonName" in tags(people_found)


# --- compound given names ------------------------------------------------------------


def test_given_names_of_two_given_names_are_still_a_given_name_column() -> None:
    given = [
        "Francisco Javier",
        "Mauricio",
        "Mateo",
        "Paola",
        "Hugo",
        "Guillermina",
        "Matías",
        "Diego",
        "María Fernanda",
        "Xochitl",
        "Benjamín",
        "Luis Fernando",
        "Elizabeth",
        "María Guadalupe",
        "Xochitl",
    ]
    found = classify_columns(table([[f"W-{i}" for i in range(15)], given]))
    assert tags(found[1]) == {"PII.PersonName"}


def test_mexican_towns_named_after_saints_are_not_given_names() -> None:
    towns = [
        "San Luis Potosí",
        "Santa Rosalía",
        "Ciudad Victoria",
        "San Andrés Tuxtla",
        "Santa Catarina",
        "Ciudad Guzmán",
        "San Felipe",
        "Villa Victoria",
        "Orizaba",
        "Ensenada",
        "Mazatlán",
        "La Paz",
        "Chignahuapan",
        "Toluca",
        "Celaya",
    ]
    found = classify_columns(table([[f"W-{i}" for i in range(15)], towns]))
    assert "PII.PersonName" not in tags(found[1])


def test_local_phone_numbers_beside_an_address_stay_phone_numbers() -> None:
    # "337-9325" fits Japan's postcode layout too, but ends in a phone's group of four
    rng = random.Random(1)
    phones = [f"{rng.randint(200, 999)}-{rng.randint(0, 9999):04d}" for _ in range(20)]
    streets = ["12 Long Street", "5 Church Street", "88 Main Road", "3 Oak Avenue"]
    cities = ["Springfield", "Columbus", "Dayton", "Toledo", "Akron"]
    found = classify_columns(table([rng.choices(streets, k=20), phones, rng.choices(cities, k=20)]))
    assert "PII.Phone" in tags(found[1])
