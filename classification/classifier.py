"""Column classification: run every registered detector over sampled column values.

Pure Python (no Django) so scan tasks, the CLI and the benchmark can all call it:

    classify_columns([ColumnSample(name="email", data_type="text", values=[...])])

Each suggestion's evidence names the detectors that fired, the match share over the sampled
non-null values, masked examples (never raw values) and whether the column name agreed.
Confidence follows ``classification.detectors.base.confidence``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from .detectors import ENTITY_DETECTORS, TAGS, VALUE_DETECTORS, VALUE_SHAPE_TAGS, Detector
from .detectors.base import (
    ColumnSample,
    Finding,
    PreparedColumn,
    TagSuggestion,
    confidence,
    prepare_column,
)
from .detectors.context import apply_table_context
from .detectors.health import is_free_text
from .detectors.ner import run_ner
from .detectors.structured import json_children

logger = logging.getLogger(__name__)

TAG_NAMES: tuple[str, ...] = TAGS
MIN_CONFIDENCE = 0.1  # weaker findings are noise, not suggestions

SETTLED_CONFIDENCE = 0.7  # a column this sure of a value-shape tag skips NER
Scores = dict[str, tuple[float, Finding]]

# A street address names a place and often a person (Mitchell Parks): the address covers it.
_IMPLIED_BY = {
    "PII.Location": "PII.Address",
    "PII.PostalCode": "PII.Address",
    "PII.PersonName": "PII.Address",
    "PII.Organization": "PII.Address",
}


def classify_columns(samples: Sequence[ColumnSample]) -> list[list[TagSuggestion]]:
    """One list of suggestions per input sample (sorted by confidence desc).

    Batches spaCy NER across all free-text columns with ``nlp.pipe``. Never raises on bad
    values; a detector that fails on one column is logged and skipped for that column.
    """
    expanded = list(samples)
    parents: list[tuple[int, str]] = []
    for index, sample in enumerate(samples):
        for path, child in _safe_json_children(sample):
            expanded.append(child)
            parents.append((index, path))
    results = _classify(expanded, len(samples))
    for (index, path), child_suggestions in zip(parents, results[len(samples) :], strict=True):
        results[index] = _merge_child(results[index], child_suggestions, path)
    return results[: len(samples)]


def _safe_json_children(sample: ColumnSample) -> list[tuple[str, ColumnSample]]:
    try:
        return list(json_children(sample))
    except Exception:  # odd driver types inside JSON must not stop the scan
        logger.exception("walking JSON of column %s failed", sample.name)
        return []


def _merge_child(
    own: list[TagSuggestion], child: list[TagSuggestion], path: str
) -> list[TagSuggestion]:
    """A JSON column carries the tags of its key paths, with the path in the evidence."""
    merged = {suggestion.tag: suggestion for suggestion in own}
    for suggestion in child:
        current = merged.get(suggestion.tag)
        paths = sorted({*current.evidence.get("json_paths", []), path}) if current else [path]
        if current is None or suggestion.confidence > current.confidence:
            evidence = {**suggestion.evidence, "json_path": path, "json_paths": paths}
            merged[suggestion.tag] = TagSuggestion(suggestion.tag, suggestion.confidence, evidence)
        elif "json_paths" in current.evidence and suggestion.confidence >= SETTLED_CONFIDENCE:
            current.evidence["json_paths"] = paths  # another path holding the same kind
    return sorted(merged.values(), key=lambda s: (-s.confidence, s.tag))


def _classify(samples: Sequence[ColumnSample], table_columns: int) -> list[list[TagSuggestion]]:
    """Classify ``samples``; the first ``table_columns`` are row-aligned table columns."""
    prepared = [prepare_column(sample) for sample in samples]
    scores = [_run(VALUE_DETECTORS, column, {}) for column in prepared]
    needs_ner = [
        column
        for column, found in zip(prepared, scores, strict=True)
        if column.texts and (not _settled(found) or is_free_text(column))
    ]
    try:
        run_ner(needs_ner)
    except Exception:  # a broken model must not stop the value detectors
        logger.exception("NER failed; continuing with value detectors only")
    scores = [_run(ENTITY_DETECTORS, c, found) for c, found in zip(prepared, scores, strict=True)]
    try:
        apply_table_context(prepared[:table_columns], scores[:table_columns])
    except Exception:  # context only adds evidence: the per-column results stand without it
        logger.exception("table context failed")
    return [_suggest(column, found) for column, found in zip(prepared, scores, strict=True)]


def classify_column(sample: ColumnSample) -> list[TagSuggestion]:
    return classify_columns([sample])[0]


def _run(detectors: Sequence[Detector], column: PreparedColumn, best: Scores) -> Scores:
    """Best (confidence, finding) per tag, added to ``best``; a failing detector is skipped."""
    if not column.texts:
        return best
    for detector in detectors:
        try:
            findings = detector(column)
        except Exception:
            logger.exception("detector %s failed on column %s", detector.__name__, column.name)
            continue
        for finding in findings:
            score = confidence(finding)
            if score >= MIN_CONFIDENCE and score > best.get(finding.tag, (0.0,))[0]:
                best[finding.tag] = (score, finding)
    return best


def _settled(best: Scores) -> bool:
    return any(
        score >= SETTLED_CONFIDENCE and (tag in VALUE_SHAPE_TAGS or tag == "PII.Address")
        for tag, (score, _) in best.items()
    )


def _suggest(column: PreparedColumn, best: Scores) -> list[TagSuggestion]:
    _drop_shadowed(best)
    suggestions = [
        TagSuggestion(tag=tag, confidence=score, evidence=_evidence(finding, column))
        for tag, (score, finding) in best.items()
    ]
    return sorted(suggestions, key=lambda s: (-s.confidence, s.tag))


def _drop_shadowed(best: Scores) -> None:
    """Keep one value-shape tag when several claim the same values; drop implied tags."""
    shaped = sorted((tag for tag in best if tag in VALUE_SHAPE_TAGS), key=lambda t: -best[t][0])
    if shaped:
        top_share = best[shaped[0]][1].share
        for tag in shaped[1:]:
            if best[tag][1].share + top_share > 1.2:
                del best[tag]
    for tag, implied_by in _IMPLIED_BY.items():
        if tag in best and implied_by in best and best[implied_by][0] >= best[tag][0] - 0.1:
            del best[tag]


def _evidence(finding: Finding, column: PreparedColumn) -> dict:
    return {
        "detectors": [finding.detector] + (["name_hint"] if finding.name_hint else []),
        "match_share": round(finding.share, 3),
        "matched": finding.matched,
        "sampled_non_null": finding.checked,
        "examples": finding.examples[:3],
        "name_hint": finding.name_hint,
        "negative_name_hint": finding.negative_hint,
        "strength": finding.strength,
        **finding.extra,
    }
