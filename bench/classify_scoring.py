"""Scoring for bench/classify.py: per-tag counts, precision/recall/F1, the printed table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from bench.tuning import LabelledColumn
from classification.classifier import TAG_NAMES


def score(
    columns: Sequence[LabelledColumn], predictions: Sequence[set[str]]
) -> dict[str, tuple[int, int, int]]:
    """Per tag (true positives, false positives, false negatives)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for column, predicted in zip(columns, predictions, strict=True):
        for tag in predicted - column.ignore:
            counts[tag][0 if tag in column.tags else 1] += 1
        for tag in column.tags - predicted:
            counts[tag][2] += 1
    return {tag: (tp, fp, fn) for tag, (tp, fp, fn) in counts.items()}


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def print_table(
    warden: dict[str, tuple[int, int, int]], presidio: dict[str, tuple[int, int, int]]
) -> list[str]:
    header = (
        f"{'tag':<22} {'support':>7} | {'Warden P':>8} {'R':>5} {'F1':>5} | "
        f"{'Presidio P':>10} {'R':>5} {'F1':>5}"
    )
    print(header)
    print("-" * len(header))
    losing = []
    totals = {"w": [0, 0, 0], "p": [0, 0, 0]}
    for tag in TAG_NAMES:
        w = warden.get(tag, (0, 0, 0))
        p = presidio.get(tag, (0, 0, 0))
        for key, counts in (("w", w), ("p", p)):
            totals[key] = [a + b for a, b in zip(totals[key], counts, strict=True)]
        wp, wr, wf = prf(*w)
        pp, pr, pf = prf(*p)
        support = w[0] + w[2]
        if wf < pf:
            losing.append(tag)
        print(
            f"{tag:<22} {support:>7} | {wp:>8.2f} {wr:>5.2f} {wf:>5.2f} | "
            f"{pp:>10.2f} {pr:>5.2f} {pf:>5.2f}"
        )
    print("-" * len(header))
    wp, wr, wf = prf(*totals["w"])
    pp, pr, pf = prf(*totals["p"])
    support = totals["w"][0] + totals["w"][2]
    print(
        f"{'overall (micro)':<22} {support:>7} | {wp:>8.2f} {wr:>5.2f} {wf:>5.2f} | "
        f"{pp:>10.2f} {pr:>5.2f} {pf:>5.2f}"
    )
    tp, fp, fn = totals["w"]
    # a target such as F1 >= 0.95 is read off these, not off the rounded line above
    print(f"  Warden counts: {tp} found, {fp} false, {fn} missed: F1 {wf:.3f}")
    return losing


def micro(counts: dict[str, tuple[int, int, int]]) -> tuple[float, float, float]:
    """Precision, recall and F1 over every tag's counts together."""
    return prf(*[sum(x) for x in zip(*counts.values(), strict=True)]) if counts else (0, 0, 0)
