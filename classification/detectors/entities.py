"""PII.PersonName, PII.Location, PII.Organization from spaCy NER plus value shape and names.

``ner.run_ner`` stores, per column, the NER labels found in each value it read. A value
counts for a tag when NER found the entity in it, or when its shape agrees and something
else vouches for the shape: a matching column name (``first_name`` holding ``Belinda``, too
short for the small model), a legal form (``Patel LLC``), or, for full names, NER agreeing
on a good part of the column. Denominator: the values NER read.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable

from cleanco import basename as cleanco_basename
from cleanco.clean import prepare_default_terms

from .base import (
    MEDIUM,
    WEAK,
    Finding,
    PreparedColumn,
    has_hint,
    starts_like_name,
    without_marks,
    without_type_prefix,
)
from .health import is_free_text
from .job_titles import job_title_column
from .legal_forms import has_elf_form

_NAME_WORD = r"[^\W\d_][^\W\d_'\u2019.-]*"
_NAME_SHAPE = re.compile(rf"{_NAME_WORD}(?:[ '\u2019.,&-]+{_NAME_WORD}){{0,5}}\.?")
_QUOTES = re.compile(r"[«»\"“”„()]")  # ОАО «Воронцов», Кроношпан (Kronoplus)
_FULL_NAME = re.compile(rf"{_NAME_WORD}(?:[ '\u2019-]+{_NAME_WORD}){{1,4}}")
LEGAL_FORM = re.compile(
    r"\b(?:inc|llc|ltd|plc|corp|co|company|gmbh|ag|kg|ohg|se|sa|sas|sarl|spa|s\.?p\.?a|"
    r"s\.?r\.?l|s\.?l|s\.?a|bv|b\.v|nv|n\.v|vof|group|groep|holding|partners|associates|"
    r"s\.?l\.?[lu]|s\.?coop|asociados|and sons|e figli|und partner|& co|hnos|s\.?com|cia)\.?$",
    re.IGNORECASE,
)


# The last word of every legal form cleanco knows: a cheap gate before its slower parse.
_PUNCTUATION = re.compile(r"[^\w\s]")
_LEGAL_FORM_ENDINGS = frozenset(
    _PUNCTUATION.sub("", term[-1]) for _, term in prepare_default_terms()
)


# Legal forms that cleanco does not know, written anywhere in the name: Cyrillic (ООО, ИП,
# НПО …), Chinese/Japanese/Korean (株式会社, 有限公司, 주식회사 …), Greek (Α.Ε., Ε.Π.Ε.),
# Polish (sp. z o.o., s.c., sp.k.), Balkan (d.o.o.), Indonesian (PT, Tbk) and the firm
# endings "i syn", "e Filhos", "og Sønner".
_LEGAL_FORM_ANYWHERE = re.compile(
    r"(?<!\w)(?:ООО|ОАО|ЗАО|ПАО|АО|ИП|НПО|ТОО|ОДО|ЧП|ФГУП|МУП|ГУП|ТОВ|ПП|ЕООД|ООД|АД|ЕТ)(?!\w)"
    r"|株式会社|有限会社|合同会社|合資会社|合名会社|有限公司|股份有限公司|有限责任公司|集团|"
    r"주식회사|유한회사|\(주\)|"
    r"(?<!\w)(?:Α\.?Ε\.?|Ε\.?Π\.?Ε\.?|Ο\.?Ε\.?|Ε\.?Ε\.?|Ι\.?Κ\.?Ε\.?)(?!\w)|"
    r"(?<!\w)(?:sp\. ?z ?o\.? ?o\.?|s\.c\.|sp\. ?k\.?|sp\. ?j\.?|s\.k\.a\.|ltda\.?|"
    r"i syn(?:owie)?|e filhos|og sønner|och söner|ja pojat|a syn|a synové|"
    r"j\.d\.o\.o\.?|d\.o\.o\.?|d\.d\.|k\.d\.|"  # Croatia, Slovenia, Serbia
    r"pt|cv|ud|tbk|\(persero\)|perum)(?!\w)",  # Indonesia
    re.IGNORECASE,
)


# "Murillo, González and Romero", "Kelemen és Vörös", "Evensen, Johansen og Madsen": a firm
# named after its partners (two or more capitalised names joined by a conjunction).
_PARTNERS = re.compile(
    rf"(?:{_NAME_WORD}[ -])*{_NAME_WORD}(?:, (?:{_NAME_WORD}[ -])*{_NAME_WORD})* "
    r"(?:and|y|e|et|und|og|och|és|és|a|i|и|και|ve|en|ja|&) "
    rf"(?:{_NAME_WORD}[ -])*{_NAME_WORD}"
)


def is_firm_name(text: str) -> bool:
    """A legal form, or partners' names joined by a conjunction."""
    # Read without combining marks: the vowel signs of Indic scripts are not word letters.
    return has_legal_form(text) or (
        len(text) <= 80
        and starts_like_name(text)
        and not _ends_in_lower_case(text)  # "Patatas a la riojana" is a dish, not partners
        and _PARTNERS.fullmatch(without_marks(text)) is not None
    )


# Family firms end in a lower-case word: "Dupont et fils", "García y hermanos".
_FAMILY_ENDINGS = frozenset(
    {"fils", "frères", "cie", "hermanos", "hijos", "hijo", "figli", "fratelli", "filhos"}
    | {"filho", "irmãos", "sønner", "sønn", "zonen", "zoon"}
)


def _ends_in_lower_case(text: str) -> bool:
    words = text.split()
    return bool(words) and words[-1][0].islower() and words[-1].strip(".,") not in _FAMILY_ENDINGS


@functools.lru_cache(maxsize=8192)
def has_legal_form(text: str) -> bool:
    """ "Patel LLC", "Acme Lda.", "Baz s.r.o.", "株式会社松本電気": a company's legal form.

    ``cleanco`` knows the legal forms of many countries (at the end of the name); the
    patterns above add a few that it does not strip (``and Sons``, ``Group``) and the
    forms of other scripts, which often come first; ``legal_forms`` adds the ISO 20275
    list's forms in each country's own language.
    """
    if LEGAL_FORM.search(text) is not None or _LEGAL_FORM_ANYWHERE.search(text) is not None:
        return True
    words = text.lower().split()
    ending = bool(words) and _PUNCTUATION.sub("", words[-1]) in _LEGAL_FORM_ENDINGS
    if ending and cleanco_basename(text) != text.strip():
        return True
    return has_elf_form(text)


_PERSON_TOKENS = (
    "name",
    "fullname",
    "firstname",
    "lastname",
    "surname",
    "forename",
    "given",
    "first",
    "last",
    "middle",
    "maiden",
    "nachname",
    "vorname",
    "nom",
    "prenom",
    "nombre",
    "apellido",
    "cognome",
    "achternaam",
    "voornaam",
    "author",
    "contact",
    "cardholder",
    "holder",
    "signatory",
    "beneficiary",
    "recipient",
    "addressee",
    "consignee",
    "payee",
)
_PERSON_NEGATIVE = (
    "product",
    "company",
    "file",
    "filename",
    "table",
    "column",
    "host",
    "hostname",
    "street",
    "city",
    "country",
    "org",
    "organization",
    "brand",
    "category",
    "display",
    "user",
    "username",
    "event",
    "job",
    "title",
    "team",
    "group",
    "role",
    "app",
    "bank",
    "business",
    "employer",
    "vendor",
    "supplier",
    "sku",
    "plan",
    "tier",
    "status",
    "type",
    "domain",
    "server",
    "queue",
    "topic",
    "service",
    "model",
    "device",
    "region",
    "place",
    "venue",
    "campaign",
    "project",
    "dept",
    "department",
    "tag",
    "label",
    "key",
)
_LOCATION_TOKENS = (
    "city",
    "town",
    "country",
    "region",
    "state",
    "province",
    "county",
    "location",
    "place",
    "municipality",
    "locality",
    "village",
    "birthplace",
    "destination",
    "origin",
    "ciudad",
    "ville",
    "stadt",
    "citta",
    "land",
    "pays",
    "pais",
    "plaats",
    "gemeente",
    "district",
)
_ORG_TOKENS = (
    "company",
    "employer",
    "organization",
    "organisation",
    "org",
    "business",
    "firm",
    "vendor",
    "supplier",
    "merchant",
    "bank",
    "insurer",
    "institution",
    "agency",
    "school",
    "university",
    "hospital",
    "carrier",
)
_CODE_LIKE = re.compile(r"[A-Z]{2,3}")
_GENERIC_NAME_COLUMNS = frozenset({"name", "title", "label", "display", "displayname"})
# What a bare ``name`` column holds depends on its table: products.name is not a person.
_TABLE_KINDS = {
    "organization": (
        "company",
        "companies",
        "vendor",
        "supplier",
        "merchant",
        "organization",
        "organisation",
        "employer",
        "bank",
        "partner",
        "brand",
        "carrier",
    ),
    "location": (
        "city",
        "cities",
        "country",
        "countries",
        "region",
        "location",
        "place",
        "state",
        "province",
        "town",
    ),
    "other": (
        "product",
        "item",
        "sku",
        "category",
        "categories",
        "tag",
        "plan",
        "role",
        "group",
        "team",
        "project",
        "file",
        "event",
        "service",
        "app",
        "application",
        "device",
        "feature",
        "permission",
        "setting",
        "label",
        "department",
        "store",
        "shop",
        "warehouse",
        "article",
        "page",
        "course",
        "channel",
        "campaign",
        "currency",
        "currencies",
        "language",
        "color",
        "colour",
        "status",
    ),
    # Last: ``user_groups`` and ``customer_segments`` are groups, not people.
    "person": (
        "customer",
        "user",
        "people",
        "person",
        "employee",
        "staff",
        "member",
        "contact",
        "patient",
        "student",
        "client",
        "author",
        "applicant",
        "guest",
        "passenger",
        "traveller",
        "traveler",
        "subscriber",
        "driver",
        "teacher",
    ),
}
# A bare ``name`` in a table that says nothing (``currencies``, ``things``) is a person's
# name only when NER reads most of its values as people: "Euro" and "Swiss Franc" are
# capitalised words, not names.
BARE_NAME_MIN_PERSON_SHARE = 0.45
# A column where this share of values carries a legal form (or partners' names) holds firms.
FIRM_COLUMN_SHARE = 0.25


def _finding(
    column: PreparedColumn,
    tag: str,
    labels: tuple[str, ...],
    hinted: bool,
    vouched_shape: Callable[[str], bool],
    free_text: bool | None = None,
) -> Finding:
    read = column.entity_labels
    share = column.entity_share(*labels)
    matched = sum(
        1
        for index, found in read.items()
        if found.intersection(labels) or vouched_shape(column.texts[index])
    )
    free_text = is_free_text(column) if free_text is None else free_text
    examples = [e for label in labels for e in column.entity_examples.get(label, [])][:3]
    return Finding(
        tag=tag,
        detector="spacy_ner" if matched <= round(share * len(read)) else "spacy_ner+shape",
        matched=matched,
        checked=len(read),
        strength=MEDIUM if share >= 0.3 else WEAK,
        examples=examples,
        name_hint=hinted,
        full_share=0.5 if free_text else 0.7,
        min_share=0.15 if free_text else 0.3,
        extra={"ner_share": round(share, 3), "free_text": free_text},
    )


def _shaped(text: str, min_len: int = 2) -> bool:
    text = without_type_prefix(text)
    return (
        min_len <= len(text) <= 80
        and starts_like_name(text)
        and _NAME_SHAPE.fullmatch(without_marks(text)) is not None
    )


def detect_person_name(column: PreparedColumn) -> list[Finding]:
    if not column.ner_ran or job_title_column(column):
        return []
    firms = _firm_count(column) >= FIRM_COLUMN_SHARE * max(len(column.entity_labels), 1)
    # Firms' names with legal forms in lower-case words read as prose, but are names
    free_text = is_free_text(column) and not firms
    # product_name, company_name, city, products.name: the name points at something else
    elsewhere = (
        bool(column.name_tokens & frozenset(_PERSON_NEGATIVE))
        or _hinted_other(column, "person")
        or firms
    )
    person = column.entity_share("PERSON")
    other = max(column.entity_share("ORG"), column.entity_share("GPE", "LOC"))
    hinted = _hints(column)["person"] and not elsewhere
    if hinted and _is_bare_name(column) and _table_kind(column) is None:
        hinted = person >= BARE_NAME_MIN_PERSON_SHARE and person > other
    # "Ergonomic Steel Chair" reads as PERSON a third of the time: demand a clear majority
    full_names = not free_text and person >= 0.45 and person >= 2 * other

    def vouched(text: str) -> bool:
        if free_text or has_legal_form(text):
            return False
        if (
            full_names
            and len(text) <= 60
            and starts_like_name(text)
            and _FULL_NAME.fullmatch(without_marks(text))
        ):
            return True
        return hinted and _shaped(text)

    finding = _finding(column, "PII.PersonName", ("PERSON",), hinted, vouched)
    if full_names and not hinted:
        finding.strength = MEDIUM
    finding.negative_hint = elsewhere and not free_text
    return [finding]


def _firm_count(column: PreparedColumn) -> int:
    return sum(1 for index in column.entity_labels if is_firm_name(column.texts[index]))


def _is_bare_name(column: PreparedColumn) -> bool:
    return column.name_tokens <= _GENERIC_NAME_COLUMNS


def _table_kind(column: PreparedColumn) -> str | None:
    """For a bare ``name``/``title`` column, what its table's name says it holds."""
    if not column.table or not _is_bare_name(column):
        return None
    table = column.table.lower()
    for kind, words in _TABLE_KINDS.items():
        if any(word in table for word in words):
            return kind
    return None


def _hints(column: PreparedColumn) -> dict[str, bool]:
    table_kind = _table_kind(column)
    return {
        "person": table_kind in (None, "person")
        and has_hint(column, _PERSON_TOKENS, ("fullname", "firstname", "lastname"))
        and not column.name_tokens & frozenset(_PERSON_NEGATIVE),
        "location": table_kind == "location"
        or has_hint(column, _LOCATION_TOKENS, ("city", "country", "birthplace")),
        "organization": table_kind == "organization"
        or has_hint(column, _ORG_TOKENS, ("company", "employer", "organi")),
        "other": table_kind == "other",
    }


def person_hinted(column: PreparedColumn) -> bool:
    """The column's name says it holds people's names (first_name, nachname, ...)."""
    return _hints(column)["person"]


def _hinted_other(column: PreparedColumn, kind: str) -> bool:
    """True when the column (or its table) names a different kind of thing than ``kind``."""
    hints = _hints(column)
    return not hints[kind] and any(hit for other, hit in hints.items() if other != kind)


def detect_location(column: PreparedColumn) -> list[Finding]:
    if not column.ner_ran:
        return []
    codes = sum(1 for text in column.texts[:50] if _CODE_LIKE.fullmatch(text))
    if codes >= len(column.texts[:50]) * 0.5:
        return []  # ISO country and state codes describe, they do not locate a person
    hinted = _hints(column)["location"]
    free_text = is_free_text(column)
    finding = _finding(
        column,
        "PII.Location",
        ("GPE", "LOC"),
        hinted,
        lambda text: hinted and not free_text and _shaped(text, 4),
    )
    finding.negative_hint = not free_text and _hinted_other(column, "location")
    return [finding]


def detect_organization(column: PreparedColumn) -> list[Finding]:
    if not column.ner_ran or _gendered_titles(column) or job_title_column(column):
        return []
    hinted = _hints(column)["organization"]
    legal = _firm_count(column)
    firms = legal >= FIRM_COLUMN_SHARE * max(len(column.entity_labels), 1)
    # "Materek i syn s.c." has lower-case words like prose, but a legal form makes it a name
    free_text = is_free_text(column) and not firms

    def vouched(text: str) -> bool:
        if free_text or not _shaped(_QUOTES.sub("", text.replace(",", ""))):
            return False
        # In a column of firms, "Macedo" beside "Macedo Lda." is a firm without its suffix
        return hinted or firms or is_firm_name(text)

    finding = _finding(column, "PII.Organization", ("ORG",), hinted, vouched, free_text)
    if not free_text and firms:
        finding.strength = MEDIUM
        finding.extra["legal_form_share"] = round(legal / len(column.entity_labels), 3)
    finding.negative_hint = not free_text and _hinted_other(column, "organization")
    return [finding]


def _gendered_titles(column: PreparedColumn) -> bool:
    """Job titles in both genders ("Vertreter / Vertreterin", "Koch / Köchin"), which the
    English model reads as firms: most values are two forms of one word around a slash."""
    head = column.texts[:50]
    return bool(head) and sum(1 for text in head if _gendered_pair(text)) >= 0.5 * len(head)


def _gendered_pair(text: str) -> bool:
    # "Koch / Köchin": compared without the umlaut that the feminine form adds
    folded = without_marks(unicodedata.normalize("NFD", text))
    parts = [part.strip().casefold() for part in folded.split("/")]
    if len(parts) != 2 or not all(parts) or max(len(p.split()) for p in parts) > 2:
        return False
    shorter = min(len(part) for part in parts)
    common = next((i for i, (a, b) in enumerate(zip(*parts, strict=False)) if a != b), shorter)
    return common >= 3 and common >= 0.5 * shorter
