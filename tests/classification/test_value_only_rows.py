"""Value-only classification with opaque column names: row context and names of other
scripts (issue 17). Each case holds real values that the detectors missed before.
"""

from __future__ import annotations

import json

from faker import Faker

from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample, TagSuggestion
from classification.detectors.entities import is_firm_name
from classification.detectors.names import value_kind
from classification.detectors.postal import postal_fits

THRESHOLD = 0.7

TAMIL_GIVEN = ["இளங்கோ", "அறிவழகன்", "தமிழ்செல்வி", "கயல்விழி", "மணிமேகலை", "செந்தாமரை"]
TAMIL_GIVEN += ["பூங்குழலி", "நெடுமாறன்"]
TAMIL_FAMILY = ["வேலுச்சாமி", "முத்தையா", "சுப்பையா", "பழனிசாமி", "கந்தசாமி", "அண்ணாமலை"]
TAMIL_FAMILY += ["ராமசாமி", "சின்னசாமி"]


def opaque(columns: list[list[object]]) -> list[ColumnSample]:
    return [ColumnSample(f"c{i}", "text", values, "t7") for i, values in enumerate(columns)]


def tags(suggestions: list[TagSuggestion]) -> dict[str, TagSuggestion]:
    return {s.tag: s for s in suggestions if s.confidence >= THRESHOLD}


def test_name_parts_a_sibling_writes_together_are_person_names_in_any_script() -> None:
    profiles = [
        json.dumps({"name": f"{given} {family}", "lang": "ta"}, ensure_ascii=False)
        for given, family in zip(TAMIL_GIVEN, TAMIL_FAMILY, strict=True)
    ]
    alone = classify_columns(opaque([TAMIL_GIVEN, TAMIL_FAMILY]))
    assert all("PII.PersonName" not in tags(found) for found in alone)  # the index misses them

    given, family, _ = classify_columns(opaque([TAMIL_GIVEN, TAMIL_FAMILY, profiles]))

    for found, other in ((given, "c1"), (family, "c0")):
        person = tags(found)["PII.PersonName"]
        assert person.evidence["context"]["sibling_column"] == "c2"
        assert person.evidence["context"]["other_part"] == other
        assert "writes beside" in person.evidence["context"]["rule"]


def test_parts_not_written_together_are_not_paired() -> None:
    # The same words in other rows of the display column: no row holds its own pair.
    others = TAMIL_FAMILY[1:] + TAMIL_FAMILY[:1]
    shifted = [f"{g} {f}" for g, f in zip(TAMIL_GIVEN, others, strict=True)]
    found = classify_columns(opaque([TAMIL_GIVEN, TAMIL_FAMILY, shifted]))
    assert "PII.PersonName" not in tags(found[0])
    assert "PII.PersonName" not in tags(found[1])


def test_one_character_korean_surnames_pair_with_given_names() -> None:
    given = ["민준", "서연", "지훈", "수빈", "현우", "지민", "예은", "도윤"]
    family = ["태", "맥", "응", "낭", "독", "갈", "견", "빈"]  # rarer surnames the index lacks
    first, last = classify_columns(opaque([given, family]))
    assert tags(last)["PII.PersonName"].evidence["context"]["sibling_column"] == "c0"
    assert "PII.PersonName" in tags(first)


def test_indic_names_are_looked_up_with_their_unwritten_vowels() -> None:
    for name in ("विक्रम", "गोविंदा", "রহিম", "করিম", "প্রিয়াঙ্কা", "සහන්"):
        assert value_kind(name) == "first", name
    assert value_kind("धर्म") is None or value_kind("धर्म") != "full"


def test_full_names_with_the_given_name_inside_or_in_their_own_script() -> None:
    assert value_kind("Рябов Сергей Иосифович") == "full"  # surname, given name, patronymic
    assert value_kind("आदित्य द्विवेदी") == "full"  # Devanagari: a known given name first
    assert value_kind("Ergonomic Steel Chair") is None


def test_partner_firms_and_bracketed_legal_forms_in_other_scripts_are_organisations() -> None:
    assert is_firm_name("පතිරණ, විජේරත්න and ධර්මසේන")  # Sinhala vowel signs inside words
    korean = ["(주) 한빛소프트", "(유) 새롬전자", "(주) 대한물산", "(유) 푸른바다", "(주) 미래정밀"]
    korean += ["(유) 하늘통신", "(주) 동방기계", "(유) 누리식품"]
    found = classify_columns(opaque([korean]))[0]
    assert "PII.Organization" in tags(found)


def test_postal_codes_after_their_label_fit_the_rows_country() -> None:
    assert postal_fits("ΤΚ 686 47", "GR")
    assert not postal_fits("ΤΚ 6864", "GR")
    codes = ["ΤΚ 105 57", "546 21", "ΤΚ 26221", "ΤΚ 712 02", "38221", "ΤΚ 491 00", "ΤΚ 851 00"]
    countries = ["Ελλάδα"] * len(codes)
    found = classify_columns(opaque([codes, countries]))[0]
    postal = tags(found)["PII.PostalCode"]
    assert postal.evidence["context"]["countries"] == ["GR"]


def test_legal_forms_of_the_iso_20275_list_mark_firms_in_their_own_language() -> None:
    from classification.detectors.entities import has_legal_form

    for firm in (
        "Công ty Cổ phần Sữa Việt Nam",  # Vietnamese joint-stock company
        "شركة الاتصالات السعودية",  # Arabic "company" first
        "Spółka Akcyjna Orlen",  # Polish form written out
        "Sociedad Anónima Damm",
    ):
        assert has_legal_form(firm), firm
    for other in ("International Falls", "Henry II", "Maria Silva", "Oslo"):
        assert not has_legal_form(other), other


# --- legal forms written around the name or abbreviated after it ----------------------

VIETNAMESE_DISHES = ["Phở bò tái", "Bánh mì thịt nướng", "Cơm tấm sườn bì", "Bún chả Hà Nội"]
VIETNAMESE_DISHES += ["Gỏi cuốn tôm thịt", "Cháo gà hành", "Bánh xèo miền Tây", "Chè ba màu"]


def test_thai_forms_around_the_name_and_vietnamese_abbreviated_forms_mark_firms() -> None:
    assert is_firm_name("บริษัท คำลือ จำกัด")  # บริษัทจำกัด, company limited, around the name
    assert is_firm_name("Trần Trần Công ty TNHH MTV")  # công ty trách nhiệm hữu hạn một ...
    assert not is_firm_name("ผัด ไทย กุ้ง") and not is_firm_name("Bún chả Hà Nội")
    assert not is_firm_name("Poulet selon la TRADITION")  # shared start, not an abbreviation
    assert is_firm_name("Minh Phát Công ty CP")  # công ty cổ phần
    assert is_firm_name("Minh Phát Công ty TNHH TM")  # TNHH begins a form's initials
    # A shared start with capitals after it that are no form's initials (review finding).
    for label in ("Classement selon la FIFA", "Taux selon la BCE", "Pago al fondo de ONU"):
        assert not is_firm_name(label), label
    assert not is_firm_name("Emploi dans la société de BTP")


def test_labels_naming_an_institution_after_a_shared_start_are_not_firms() -> None:
    labels = ["Taux selon la BCE", "Classement selon la FIFA", "Normes selon la DIN"]
    labels += ["Prix selon la SNCF", "Tarif selon la RATP", "Données selon la BNF"]
    indicators = ["Indice des prix", "Taux directeur", "Produit intérieur brut", "Dette publique"]
    indicators += ["Balance commerciale", "Chômage partiel"]
    found, _ = classify_columns(opaque([labels * 2, indicators * 2]))
    assert "PII.Organization" not in tags(found)


def test_firms_whose_legal_forms_read_like_prose_are_organisations_not_people() -> None:
    faker = Faker("vi_VN")
    faker.seed_instance(5)
    companies = [faker.company() for _ in range(16)]  # "Hoàng Công ty Cổ phần", ...
    firms, dishes = classify_columns(opaque([companies, VIETNAMESE_DISHES * 2]))
    assert "PII.Organization" in tags(firms)
    assert "PII.PersonName" not in tags(firms)
    assert tags(dishes) == {}


def test_dishes_joined_by_a_conjunction_are_not_partner_firms() -> None:
    # Czech and Slovak "a" joins partners' names; in Spanish it starts "a la riojana".
    assert not is_firm_name("Patatas a la riojana") and not is_firm_name("Callos a la madrileña")
    # Family firms end in a lower-case word too (review finding).
    assert is_firm_name("Dupont et fils") and is_firm_name("García y hermanos")
    assert is_firm_name("Dupont et cie") and is_firm_name("Silva e filho")
    assert is_firm_name("Novák a Dvořák") and is_firm_name("Jansen en van Dijk")
    dishes = ["Gazpacho", "Patatas a la riojana", "Callos a la madrileña", "Olla podrida"]
    dishes += ["Patatas a la importancia", "Perdiz toledana", "Bacalao al ajoarriero"]
    dishes += ["Marmitako de atún"]
    (found,) = classify_columns(opaque([dishes * 2]))
    assert "PII.Organization" not in tags(found)


GERMAN_TITLES = [
    "Zahnarzt / Zahnärztin",
    "Kellner / Kellnerin",
    "Kaufmann / Kauffrau",
    "Bauer / Bäuerin",
    "Maler / Malerin",
    "Sekretär / Sekretärin",
    "Bäcker / Bäckerin",
    "Übersetzer / Übersetzerin",
    "Krankenpfleger / Krankenschwester",
    "Politiker / Politikerin",
    "Vertreter / Vertreterin",
    "Musiker / Musikerin",
    "Rechtsanwalt / Rechtsanwältin",
    "Koch / Köchin",
    "Feuerwehrmann / Feuerwehrfrau",
]


def test_job_titles_in_both_genders_are_not_organisations() -> None:
    (found,) = classify_columns(opaque([GERMAN_TITLES]))
    assert "PII.Organization" not in tags(found)
    # Firms with a slash in their names are still firms.
    firms = ["Müller / Schmidt GmbH", "Berger / Huber KG", "Wagner / Brandt OHG", "Fuchs AG"]
    firms += ["Keller / Roth GmbH", "Schulz / Weber KG", "Lang / Vogel GmbH", "Hahn AG"]
    (found,) = classify_columns(opaque([firms * 2]))
    assert "PII.Organization" in tags(found)
