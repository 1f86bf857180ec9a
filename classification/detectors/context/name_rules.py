"""Person names by their pairing: the given-name and surname columns of a table of people.

* two single-token columns, one of common first names, the other of names, that read as
  "first last" row by row are both person names;
* two single-token columns whose values a third column of the same row writes together
  ("Vikram" and "Yadav" beside ``{"name": "Vikram Yadav"}`` or a display name "Yadav
  Vikram") are the parts of a full name, whatever script or culture the names come from;
* a single-token column of names the index knows, right beside a settled name column, is
  the other part (beside given names of two words: "Thanh Tâm", "Maria Clara");
* name-shaped values that the same row's e-mail address spells (romanised) are names.

Row evidence outweighs the English model's guess that lone foreign names are places or firms.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from anyascii import anyascii

from ..base import Finding, PreparedColumn
from ..cities import is_place
from ..names import name_kinds, name_tokens_of, one_syllable_surname, value_kind
from ..places import country_share
from .birth_dates import birth_date_column
from .rows import MIN_ROWS, ROW_SHARE, Scores, by_row, context_finding, settled

SURNAME_SHARE = 0.3
SINGLE_TOKEN_SHARE = 0.5  # بن لادن, آل رفيع, Van Dijk: surnames of two words
FIRST_NAME_ROWS = 0.6  # the index misses rarer first names of every culture (Евграф, Gnúpur)
# In a table of people (a birth-date column), a third is enough: old and rare given names
# (Ketilløgh, Waghn, 会娟) are the ones a frequency list misses, and the rows are people.
PEOPLE_FIRST_NAME_ROWS = 0.3


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


def name_pair_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    candidates = [i for i, column in enumerate(table) if _single_tokens(column)]
    if len(candidates) < 2:
        return []
    kinds = {i: name_kinds(table[i]) for i in candidates}
    people = birth_date_column(table, scores)
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
                finding = context_finding(
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


KNOWN_SURNAME_SHARE = 0.6  # beside a settled name column, without row-by-row first names


def surname_beside_name_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """A single-token column of names the index knows, right beside a column already
    settled as person names, is the other part of the name. Given names of two words
    ("Thanh Tâm", "Maria Clara", "Xiao Ming") are no single tokens, so the first/last pair
    misses them; their surname column (Nguyễn, Trần; Kim, Park) is mostly names the index
    knows, where a column of towns, products or occupations is not."""
    people = settled(scores, "PII.PersonName")
    found: list[tuple[int, Finding]] = []
    for position, column in enumerate(table):
        beside = sorted({position - 1, position + 1} & people)
        best = scores[position]
        if not beside or position in people or not _single_tokens(column) or _placeish(best):
            continue
        if any(score >= 0.7 for score, _ in best.values()) or country_share(column) > 0.2:
            continue
        kinds = name_kinds(column)
        known = kinds["first"] + kinds["last"]
        known += sum(1 for text in column.texts[:100] if one_syllable_surname(text))
        if known < KNOWN_SURNAME_SHARE * kinds["read"] or _few_values(column):
            continue
        if not _part_of_full_names(column, table[beside[0]]):
            continue
        finding = context_finding(
            "PII.PersonName",
            "names the index knows, beside a column of person names",
            table[beside[0]],
            known,
            kinds["read"],
        )
        _overrule_ner(best, finding)
        found.append((position, finding))
    return found


def _few_values(column: PreparedColumn) -> bool:
    """A handful of values over many rows: colours, grades, statuses, not people's names."""
    head = column.texts[:100]
    return len(head) >= 20 and len(set(head)) < 0.3 * len(head)


def _part_of_full_names(column: PreparedColumn, names: PreparedColumn) -> bool:
    """Beside a column of full names ("Alice Johnson"), a part of the name is a word of the
    same row's full name; a colour or a make beside the owner's name is not. Beside given
    names (one word, or two: "Thanh Tâm", whose last word is a given name too) there is
    nothing to check."""
    head = names.texts[:100]
    ending_in_surnames = sum(
        1 for text in head if len(text.split()) > 1 and value_kind(text.split()[-1]) == "last"
    )
    if ending_in_surnames < 0.5 * len(head):
        return True
    full = {
        row: set(_letters(word) for word in text.split()) for row, text in by_row(names).items()
    }
    inside = checked = 0
    for row, text in by_row(column).items():
        if row in full:
            checked += 1
            inside += _letters(text) in full[row]
    return checked == 0 or inside >= ROW_SHARE * checked


def _surname_lead(column: PreparedColumn, kinds: dict[str, int]) -> float:
    """Share of known name parts less the share of values only a gazetteer knows."""
    head = column.texts[:100]
    places_only = sum(1 for text in head if is_place(text) and not value_kind(text))
    return (kinds["first"] + kinds["last"] - places_only) / kinds["read"]


def written_together_rule(
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
            for row, text in by_row(holder).items():
                if row in pairs:
                    checked += 1
                    together += _written_together(*pairs[row], text)
            if checked < MIN_ROWS or together < ROW_SHARE * checked:
                continue
            for position in (first, other):
                finding = context_finding(
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


def names_in_email_rule(
    table: Sequence[PreparedColumn], scores: Sequence[Scores]
) -> list[tuple[int, Finding]]:
    """Name-shaped values that the same row's e-mail address spells are person names.

    People's addresses are made of their names (anna.berg@, aberg72@, berg_anna@), in Latin
    letters whatever script the name is written in: "Мария" is in mariya.ivanova@, "राम"
    in ram.sharma@. So the rows vouch for names no name list knows. The address must hold
    more than the value: a role mailbox (sales@ beside "Sales") spells a department."""
    mails = [
        column
        for column, best in zip(table, scores, strict=True)
        if best.get("PII.Email", (0.0,))[0] >= 0.7
    ]
    found: list[tuple[int, Finding]] = []
    for position, column in enumerate(table):
        best = scores[position]
        if not mails or column in mails or column.type_family != "text" or _placeish(best):
            continue
        if any(score >= 0.7 for score, _ in best.values()) or country_share(column) > 0.2:
            continue
        if _name_shaped_share(column) < ROW_SHARE:
            continue
        for mail in mails:
            spelled, checked, rests = _spelled_in(column, mail)
            if (
                checked >= MIN_ROWS
                and spelled >= ROW_SHARE * checked
                and len(set(rests)) >= DISTINCT_RESTS_SHARE * len(rests)
            ):
                finding = context_finding(
                    "PII.PersonName",
                    "a name the same row's e-mail address spells",
                    mail,
                    spelled,
                    checked,
                )
                _overrule_ner(best, finding)
                found.append((position, finding))
                break
    return found


# What a person's address holds beside the value is their other name, different row to
# row; a team mailbox's rest is a suffix many share (sales-team@, legal-team@, billing.ops@).
DISTINCT_RESTS_SHARE = 0.8


def _spelled_in(column: PreparedColumn, mail: PreparedColumn) -> tuple[int, int, list[str]]:
    """(rows whose e-mail local part holds the value and more, rows read, what the local
    parts hold beside the value)."""
    local_parts = {row: _letters(text.partition("@")[0]) for row, text in by_row(mail).items()}
    spelled = checked = 0
    rests: list[str] = []
    for row, text in by_row(column).items():
        local, name = local_parts.get(row), _letters(text)
        if local is None or len(name) < 3:  # "Lê", "Wu": too short to tell
            continue
        checked += 1
        if name in local and len(local) >= len(name) + 2:
            spelled += 1
            rests.append(local.replace(name, "", 1))
    return spelled, checked, rests


def _letters(text: str) -> str:
    """Latin letters of ``text`` in lower case, other scripts romanised: "Đặng" -> "dang"."""
    return "".join(char for char in anyascii(text).lower() if "a" <= char <= "z")


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
    right_rows = by_row(right)
    return [
        (row, (text, right_rows[row])) for row, text in by_row(left).items() if row in right_rows
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
