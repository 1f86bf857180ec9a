"""Row and table context: columns of one table are judged together, row by row.

A scan samples whole rows, so the n-th value of every column of a table comes from the
same row. Five rules read across columns, each adding a finding whose evidence names the
rule and the sibling column that decided (``evidence["context"]``):

* place names beside an address column are its city (NER need only read a fifth of them
  as places, or the gazetteer know two in five, where alone they must read most);
* a short code fits the postal-code format of the country in its row's country column
  (formats per country from ``postal-codes-tools``, countries resolved with ``pycountry``),
  or, with no country column, fits one country's format next to a city or address column;
* a number written without its country prefix is a valid phone number in its row's country
  (``phonenumbers`` with the row's country as the region);
* two single-token columns, one of common first names, the other of names, that read as
  "first last" row by row are both person names;
* two single-token columns whose values a third column of the same row writes together
  ("Vikram" and "Yadav" beside ``{"name": "Vikram Yadav"}`` or a display name "Yadav
  Vikram") are the parts of a full name, whatever script or culture the names come from;
* a date sits 18-100 years before a sibling date of the same row (signed up, admitted,
  ordered): a birth date.

A country column that contradicts a rule has the last word: codes that do not fit their
rows' countries are not postal codes, whatever else they sit next to.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from collections import Counter
from collections.abc import Sequence

from postal_codes_tools.formats_constants import POSTAL_CODES_REGEX

from .base import CONTEXT, Finding, PreparedColumn, confidence, has_hint, starts_like_name
from .birthdate import as_date
from .cities import is_place, place_share
from .masking import mask_generic, mask_words
from .names import name_kinds, name_tokens_of, one_syllable_surname, value_kind
from .phone import national_phone_valid
from .places import country_code, country_share

Scores = dict[str, tuple[float, Finding]]
ROW_SHARE = 0.8  # share of rows (with both values present) a rule must hold on
MIN_ROWS = 5
# Without a country column a code must fit one of these (the formats of the countries a
# deployment most often meets); with one, every country ``postal-codes-tools`` knows.
# fmt: off
LONE_POSTAL_COUNTRIES = (
    "US", "DE", "FR", "ES", "IT", "GB", "NL", "BR", "PL", "PT", "SE", "AT",
    "CH", "BE", "DK", "NO", "FI", "CZ", "AU", "CA", "MX", "JP", "IN",
)
# fmt: on
ADULT_YEARS = (18.0, 100.0)
SURNAME_SHARE = 0.3
SINGLE_TOKEN_SHARE = 0.5  # بن لادن, آل رفيع, Van Dijk: surnames of two words
FIRST_NAME_ROWS = 0.6  # the index misses rarer first names of every culture (Евграф, Gnúpur)
# In a table of people (a birth-date column), a third is enough: old and rare given names
# (Ketilløgh, Waghn, 会娟) are the ones a frequency list misses, and the rows are people.
PEOPLE_FIRST_NAME_ROWS = 0.3


def apply_table_context(columns: Sequence[PreparedColumn], scores: Sequence[Scores]) -> None:
    """Add context findings to ``scores`` (one dict per column) for columns of one sample."""
    tables: dict[tuple[str, int], list[int]] = {}
    for index, column in enumerate(columns):
        if column.row_count >= MIN_ROWS:
            tables.setdefault((column.table, column.row_count), []).append(index)
    for members in tables.values():
        if len(members) < 2:
            continue
        table = [columns[i] for i in members]
        # Birth dates first: they say the rows are people, which the name rules read. Then
        # names: a surname column the English model reads as places is settled by its
        # first-name sibling before the place rule could claim it.
        rules = (
            _birth_date_rule,
            _written_together_rule,
            _name_pair_rule,
            _place_rule,
            _postal_rule,
            _phone_rule,
        )
        for rule in rules:
            for position, finding in rule(table, [scores[i] for i in members]):
                _add(scores[members[position]], finding)


def _add(best: Scores, finding: Finding) -> None:
    score = confidence(finding)
    if score > best.get(finding.tag, (0.0,))[0]:
        best[finding.tag] = (score, finding)


def _by_row(column: PreparedColumn) -> dict[int, str]:
    return dict(zip(column.rows, column.texts, strict=True))


def _context_finding(
    tag: str, rule: str, sibling: PreparedColumn, matched: int, checked: int, **extra: object
) -> Finding:
    return Finding(
        tag=tag,
        detector="table_context",
        matched=matched,
        checked=checked,
        strength=CONTEXT,
        full_share=ROW_SHARE,
        min_share=ROW_SHARE,
        extra={"context": {"rule": rule, "sibling_column": sibling.name, **extra}},
    )


# --- places next to addresses ---------------------------------------------------------

PLACE_NER_SHARE = 0.2  # NER reads a fifth of the values as places: enough beside an address
PLACE_GAZETTEER_SHARE = 0.3  # or the gazetteer knows three in ten (villages are not in it)


def _place_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """A column of place-like words in a table with addresses is the addresses' city.

    One such column per address column: beside a street, the English model reads surnames
    and occupations of other languages as places too, less often than the town's names and
    more often known to the name index. The most place-like column wins."""
    anchors = [
        c
        for c, best in zip(table, scores, strict=True)
        if best.get("PII.Address", (0.0,))[0] >= 0.7
    ]
    if not anchors:
        return []
    found: list[tuple[float, int, Finding]] = []
    for position, column in enumerate(table):
        best = scores[position]
        if column in anchors or any(score >= 0.7 for score, _ in best.values()):
            continue
        ner_places = column.ner_ran and column.entity_share("GPE", "LOC") >= PLACE_NER_SHARE
        known_places = place_share(column)
        if not ner_places and known_places < PLACE_GAZETTEER_SHARE:
            continue
        kinds = name_kinds(column)
        names = kinds["first"] + kinds["full"] + kinds["last"]
        if kinds["first"] + kinds["full"] >= 0.5 * kinds["read"] or (
            names >= 0.7 * kinds["read"]
            and column.entity_share("GPE", "LOC") <= column.entity_share("PERSON")
            and known_places < ROW_SHARE  # Portuguese towns are surnames too (Elvas, Macedo)
        ):
            continue  # names, some of which read as places: a person column
        share = sum(1 for text in column.texts if _place_shaped(text)) / len(column.texts)
        if share >= ROW_SHARE:
            finding = _context_finding(
                "PII.Location",
                "place names beside an address column",
                anchors[0],
                round(share * len(column.texts)),
                len(column.texts),
            )
            finding.examples = [mask_words(text) for text in column.texts[:3]]
            ner_lead = column.entity_share("GPE", "LOC") - names / kinds["read"]
            found.append((known_places + ner_lead, position, finding))
    # Towns already settled (by the gazetteer or the column's name) use up their addresses.
    towns = sum(
        1
        for column, best in zip(table, scores, strict=True)
        if best.get("PII.Location", (0.0,))[0] >= 0.7 and not _is_country_column(column)
    )
    found.sort(key=lambda item: -item[0])
    return [(position, finding) for _, position, finding in found[: max(0, len(anchors) - towns)]]


def _place_shaped(text: str) -> bool:
    return (
        2 <= len(text) <= 60
        and starts_like_name(text)
        and not (len(text) <= 3 and text.isupper())
        and not any(char.isdigit() for char in text)
    )


# --- postal codes ---------------------------------------------------------------------


def _is_country_column(column: PreparedColumn) -> bool:
    return country_share(column) >= ROW_SHARE


def _postal_candidate(column: PreparedColumn) -> bool:
    if column.type_family not in ("text", "integer") or not column.texts:
        return False
    head = column.texts[:40]
    # "13496-73780" (Iran) is 11 characters: count letters and digits, not separators
    shaped = sum(
        1 for t in head if 3 <= sum(c.isalnum() for c in t) <= 10 and any(c.isdigit() for c in t)
    )
    if shaped < ROW_SHARE * len(head):
        return False
    numbers = sorted({int(t) for t in head if t.isdigit()})
    if len(numbers) < len(set(head)) or len(numbers) < MIN_ROWS:
        return True
    steps = [b - a for a, b in itertools.pairwise(numbers)]
    return sum(1 for step in steps if step <= 2) < 0.8 * len(steps)  # not a counter


def _postal_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    countries = [c for c in table if _is_country_column(c)]
    places = [
        c
        for c, best in zip(table, scores, strict=True)
        if any(best.get(tag, (0.0,))[0] >= 0.5 for tag in ("PII.Location", "PII.Address"))
        and c not in countries
    ]
    found: list[tuple[int, Finding]] = []
    for position, column in enumerate(table):
        if not _postal_candidate(column) or column in countries:
            continue
        finding = _postal_by_country(column, countries, places)
        if finding is None and not countries:
            # a country column that contradicts the codes has the last word
            finding = _postal_by_place(column, places)
        if finding is not None:
            finding.examples = [mask_generic(text) for text in column.texts[:3]]
            # member_no, order_ref: a name that says number or id outweighs a fitting shape
            finding.negative_hint = has_hint(column, _NUMBER_TOKENS)
            found.append((position, finding))
    kept = _fewest_doubts(found, table)
    for position, finding in kept:
        if "country_column" in finding.extra["context"]:
            # "6766-472" also parses as a local phone number; the row's country decides
            scores[position].pop("PII.Phone", None)
    return kept


_NUMBER_TOKENS = ("no", "nr", "num", "number", "id", "ref", "seq", "count", "qty", "quantity")


_CODE_LABEL = re.compile(r"[^\W\d_]{1,3}\.? ")


def without_code_label(code: str) -> str:
    """ "ΤΚ 686 47" -> "686 47": a postal code's abbreviated label, when it has one."""
    label = _CODE_LABEL.match(code)
    return code[label.end() :] if label else code


_DIGIT_RANGE = re.compile(r"\[(?:\d-\d)+\]")


@functools.cache
def postal_format(country: str, *, relaxed: bool = False) -> re.Pattern[str] | None:
    """``country``'s postal-code format as a pattern for whole values, or None.

    The resource writes its patterns for ``re.match`` and leaves some alternatives open at
    one end: "^(\\d{3} \\d{2})|\\d{5}$" (Slovakia) took any value that starts with three
    digits, a space and two more, and Armenia's "^(\\d{4})|(\\d{6})$" any value that starts
    with four digits. Matched whole, each alternative must fit alone. A pattern that
    accepts any text (Ireland's ".{1,255}") says nothing, so it gives None. ``relaxed``
    reads digit ranges as any digit ("[1-5]\\d{4}" -> five digits): the layout of the
    country's codes without the ranges it gives out, which generators and old codes miss."""
    pattern = POSTAL_CODES_REGEX.get(country)
    if pattern is None:
        return None
    if relaxed:
        pattern = _DIGIT_RANGE.sub(r"\\d", pattern)
    compiled = re.compile(f"(?:{pattern})")
    if compiled.fullmatch("x") or compiled.fullmatch("Postcode"):
        return None
    return compiled


def postal_fits(code: str, country: str, *, relaxed: bool = False) -> bool:
    """The code fits ``country``'s format, also written with its prefix ("H-1021", "D-10115")
    or stored without its separator ("11455" for "114 55", "13570747" for "13570-747")."""
    pattern = postal_format(country, relaxed=relaxed)
    if pattern is None:
        return False
    if pattern.fullmatch(code):
        return True
    prefix, _, rest = code.partition("-")
    if prefix in (country, country[0]) and pattern.fullmatch(rest):
        return True
    # "ΤΚ 686 47", "CP 1000", "PLZ 8001": a postal code's abbreviated label before it
    bare = without_code_label(code)
    if bare != code and pattern.fullmatch(bare):
        return True
    return code.isdigit() and any(
        pattern.fullmatch(f"{code[:cut]}{separator}{code[cut:]}")
        for cut in range(2, len(code) - 1)
        for separator in " -"
    )


def _fixed_lengths(known: Sequence[tuple[str, str]], *, integers: bool = False) -> bool:
    """A country's postal codes have one length; counts and amounts (7, 512, 4096) do not.

    Integers must all have it: points and counts drawn from 0-5000 are mostly four digits
    long, and codes stored as integers lose only leading zeros, which no format fits."""
    lengths: dict[str, Counter[int]] = {}
    for code, country in known:  # "13570-747" and "13570747" are one length
        digits = sum(c.isalnum() for c in without_code_label(code))
        lengths.setdefault(country, Counter())[digits] += 1
    modal = sum(counter.most_common(1)[0][1] for counter in lengths.values())
    return modal >= (1.0 if integers else 0.9) * len(known)


def _row_pairs(values: dict[int, str], countries: PreparedColumn) -> list[tuple[str, str]]:
    """(value, its row's ISO country) for the rows where both are known."""
    pairs = []
    for row, text in _by_row(countries).items():
        value, country = values.get(row), country_code(text)
        if value is not None and country is not None:
            pairs.append((value, country))
    return pairs


def _postal_by_country(
    column: PreparedColumn, countries: Sequence[PreparedColumn], places: Sequence[PreparedColumn]
) -> Finding | None:
    """Codes that fit their rows' countries' formats; beside an address or a city, codes
    with the layout of those formats (the digits of "85288" outside Croatia's 1-5 range)."""
    codes = _by_row(column)
    for sibling in countries:
        known = [(code, cc) for code, cc in _row_pairs(codes, sibling) if postal_format(cc)]
        integers = column.type_family == "integer"
        if len(known) < MIN_ROWS or not _fixed_lengths(known, integers=integers):
            continue
        for relaxed in (False, True) if places else (False,):
            fits = sum(1 for code, cc in known if postal_fits(code, cc, relaxed=relaxed))
            if fits >= ROW_SHARE * len(known):
                rule = "fits the postal format of the row's country"
                if relaxed:
                    rule = "has the layout of the row's country's postal codes, next to a place"
                return _context_finding(
                    "PII.PostalCode",
                    rule,
                    places[0] if relaxed else sibling,
                    fits,
                    len(known),
                    countries=sorted({country for _, country in known})[:10],
                    country_column=sibling.name,
                    layout_only=relaxed,
                )
    return None


def _postal_by_place(column: PreparedColumn, places: Sequence[PreparedColumn]) -> Finding | None:
    if not places:
        return None
    codes = column.texts[:100]
    for country in LONE_POSTAL_COUNTRIES:
        fits = sum(1 for code in codes if postal_fits(code, country))
        if fits >= 0.95 * len(codes):
            return _context_finding(
                "PII.PostalCode",
                "one country's postal format next to an address or city",
                places[0],
                fits,
                len(codes),
                country=country,
            )
    return None


def _fewest_doubts(
    found: list[tuple[int, Finding]], table: Sequence[PreparedColumn]
) -> list[tuple[int, Finding]]:
    """Of several columns that fit the same countries' codes, keep the likeliest: a text
    column over an integer one (codes keep their leading zeros as text; points and
    counts are integers), a code that fits the format over one with its layout only."""

    def doubt(item: tuple[int, Finding]) -> tuple[bool, bool]:
        position, finding = item
        return (
            table[position].type_family != "text",
            bool(finding.extra["context"].get("layout_only")),
        )

    if len(found) < 2:
        return found
    least = min(doubt(item) for item in found)
    return [item for item in found if doubt(item) == least]


# --- phone numbers written without their country prefix -------------------------------


def _phone_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    countries = [c for c in table if _is_country_column(c)]
    found: list[tuple[int, Finding]] = []
    for position, column in enumerate(table):
        if (
            not countries
            or column in countries
            or scores[position].get("PII.Phone", (0.0,))[0] >= 0.7
        ):
            continue
        if column.type_family != "text" or any(s >= 0.7 for s, _ in scores[position].values()):
            continue
        numbers = _by_row(column)
        for sibling in countries:
            known = _row_pairs(numbers, sibling)
            valid = sum(1 for number, cc in known if national_phone_valid(number, cc))
            if len(known) >= MIN_ROWS and valid >= ROW_SHARE * len(known):
                finding = _context_finding(
                    "PII.Phone",
                    "a valid phone number in the row's country",
                    sibling,
                    valid,
                    len(known),
                )
                finding.examples = [mask_generic(text) for text in column.texts[:3]]
                found.append((position, finding))
                break
    return found


# --- first and last names -------------------------------------------------------------


def _single_tokens(column: PreparedColumn) -> bool:
    head = column.texts[:40]
    if column.type_family != "text" or len(head) < MIN_ROWS:
        return False
    lengths = [len(tokens) for text in head if (tokens := name_tokens_of(text))]
    # Mostly one word: "Van den Broeck", "Benjamin Alejandro" and "Jean-Pierre" are still one
    # name part each, but a column of "first last" full names is not. Read over the
    # name-shaped values: a stray "žagar" in lower case does not make a name part a sentence.
    single = lengths.count(1)
    short = sum(1 for length in lengths if length <= 3)
    return (
        len(lengths) >= ROW_SHARE * len(head)
        and single >= SINGLE_TOKEN_SHARE * len(lengths)
        and short >= 0.9 * len(lengths)
        and len(set(head)) >= 0.3 * len(head)
    )


def _name_pair_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    candidates = [i for i, column in enumerate(table) if _single_tokens(column)]
    if len(candidates) < 2:
        return []
    kinds = {i: name_kinds(table[i]) for i in candidates}
    people = _birth_date_column(table, scores)
    needed = PEOPLE_FIRST_NAME_ROWS if people else FIRST_NAME_ROWS
    firsts = sorted(
        (
            i
            for i in candidates
            if kinds[i]["first"] >= needed * kinds[i]["read"]
            and kinds[i]["first"] >= 2 * kinds[i]["last"]
        ),
        key=lambda i: -kinds[i]["first"] / kinds[i]["read"],
    )
    found: list[tuple[int, Finding]] = []
    for first in firsts:
        # The sibling most made of known names and least of places only: beside given
        # names, an occupation or a town column also holds a few surnames (Pescador,
        # Elverum), a surname column more; Portuguese surnames (Morais, Matias) are given
        # names too, and Portuguese towns (Elvas, Peniche) surnames too.
        others = sorted(
            (i for i in candidates if i != first and not _placeish(scores[i])),
            key=lambda i: -_surname_lead(table[i], kinds[i]),
        )
        for other in others:
            # Surnames are a longer tail than first names (Slovak -ová forms, rare names):
            # a third known is enough beside a column of first names, row by row.
            known = kinds[other]["first"] + kinds[other]["last"]
            known += sum(1 for text in table[other].texts[:100] if one_syllable_surname(text))
            if known < SURNAME_SHARE * kinds[other]["read"] or country_share(table[other]) > 0.2:
                continue
            pairs = _pairs(table[first], table[other])
            rows = sum(1 for a, _ in pairs if value_kind(a) == "first")
            if len(pairs) < MIN_ROWS or rows < needed * len(pairs):
                continue
            for position, sibling, role in ((first, other, "first"), (other, first, "last")):
                finding = _context_finding(
                    "PII.PersonName",
                    f"{role} name of a first/last name pair",
                    table[sibling],
                    len(pairs),
                    len(pairs),
                    role=role,
                )
                if people is not None and needed < FIRST_NAME_ROWS:
                    finding.extra["context"]["people_table"] = people.name
                _overrule_ner(scores[position], finding)
                found.append((position, finding))
            break
    return found


def _birth_date_column(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> PreparedColumn | None:
    """A column of birth dates: the table's rows are people."""
    for column, best in zip(table, scores, strict=True):
        if best.get("PII.DateOfBirth", (0.0,))[0] >= 0.7:
            return column
    return None


def _surname_lead(column: PreparedColumn, kinds: dict[str, int]) -> float:
    """Share of known name parts less the share of values only a gazetteer knows."""
    head = column.texts[:100]
    places_only = sum(1 for text in head if is_place(text) and not value_kind(text))
    return (kinds["first"] + kinds["last"] - places_only) / kinds["read"]


def _written_together_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """Given name and surname columns, found because a sibling writes them side by side.

    A table that keeps ``first_name`` and ``last_name`` often keeps the full name too (a
    display name, a JSON profile): both parts then appear, next to each other, inside one
    value of that row. This needs no name list, so it holds for names the name index
    does not know (Tamil, Sinhala, Persian, rare Turkish or Indonesian names)."""
    candidates = [
        i
        for i, column in enumerate(table)
        if _single_tokens(column)
        and not _placeish(scores[i])
        and country_share(column) <= 0.2
        and _name_shaped_share(column) >= ROW_SHARE
    ]
    found: list[tuple[int, Finding]] = []
    taken: set[int] = set()
    for first, other in itertools.permutations(candidates, 2):
        if first in taken or other in taken:
            continue
        pairs = {row: (a, b) for row, (a, b) in _pairs_by_row(table[first], table[other])}
        for holder in table:
            if holder in (table[first], table[other]) or holder.type_family not in ("text", "json"):
                continue
            together = checked = 0
            for row, text in _by_row(holder).items():
                if row in pairs:
                    checked += 1
                    together += _written_together(*pairs[row], text)
            if checked < MIN_ROWS or together < ROW_SHARE * checked:
                continue
            for position in (first, other):
                finding = _context_finding(
                    "PII.PersonName",
                    "a name part that a sibling column writes beside its other part",
                    holder,
                    together,
                    checked,
                    other_part=table[other if position == first else first].name,
                )
                _overrule_ner(scores[position], finding)
                found.append((position, finding))
            taken.update((first, other))
            break
    return found


def _name_shaped_share(column: PreparedColumn) -> float:
    head = column.texts[:40]
    return sum(1 for text in head if name_tokens_of(text)) / len(head) if head else 0.0


def _written_together(first: str, last: str, text: str) -> bool:
    """``first`` and ``last`` side by side (either order) as whole words of ``text``."""
    for phrase in (f"{first} {last}", f"{last} {first}"):
        start = text.find(phrase)
        if start >= 0:
            end = start + len(phrase)
            before = text[start - 1] if start else " "
            after = text[end] if end < len(text) else " "
            if not before.isalnum() and not after.isalnum():
                return True
    return False


def _pairs_by_row(left: PreparedColumn, right: PreparedColumn) -> list[tuple[int, tuple[str, str]]]:
    right_rows = _by_row(right)
    return [
        (row, (text, right_rows[row])) for row, text in _by_row(left).items() if row in right_rows
    ]


def _overrule_ner(best: Scores, finding: Finding) -> None:
    """Row evidence outweighs the model's guess that lone foreign names are places or firms."""
    for tag in ("PII.Location", "PII.Organization"):
        if _ner_only(best, tag):
            del best[tag]
            finding.extra["context"]["overrules"] = f"{tag} (NER alone)"


def _ner_only(best: Scores, tag: str) -> bool:
    return tag in best and best[tag][1].detector.startswith("spacy_ner")


def _placeish(best: Scores) -> bool:
    """Places or firms by something firmer than NER reading lone words as places or firms
    (the English model reads Ozuna or Oshodi as an organisation as often as a person)."""
    return any(
        best.get(tag, (0.0,))[0] >= 0.5 and not _ner_only(best, tag)
        for tag in ("PII.Location", "PII.Organization")
    )


def _pairs(left: PreparedColumn, right: PreparedColumn) -> list[tuple[str, str]]:
    return [pair for _, pair in _pairs_by_row(left, right)]


# --- birth dates ----------------------------------------------------------------------


def _dates(column: PreparedColumn) -> dict[int, dt.date] | None:
    if column.type_family not in ("date", "timestamp", "text"):
        return None
    dates = {}
    for row, value, text in zip(column.rows, column.raw_values, column.texts, strict=True):
        day, _ = as_date(value, text)
        if day is not None:
            dates[row] = day
        elif len(dates) == 0 and row >= 10:
            return None
    return dates if len(dates) >= ROW_SHARE * max(len(column.texts), 1) else None


def _birth_date_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    dated = {i: d for i, column in enumerate(table) if (d := _dates(column))}
    found: list[tuple[int, Finding]] = []
    for index, births in dated.items():
        for other, later in dated.items():
            if other == index:
                continue
            gaps = [(later[r] - day).days / 365.25 for r, day in births.items() if r in later]
            adult = sum(1 for gap in gaps if ADULT_YEARS[0] <= gap <= ADULT_YEARS[1])
            if len(gaps) >= MIN_ROWS and adult >= ROW_SHARE * len(gaps):
                finding = _context_finding(
                    "PII.DateOfBirth",
                    "18-100 years before a sibling date",
                    table[other],
                    adult,
                    len(gaps),
                )
                finding.examples = [mask_generic(t[:10]) for t in table[index].texts[:3]]
                found.append((index, finding))
                break
    return found
