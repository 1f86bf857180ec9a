"""bench/classify.py's third held-out generator (@faker-js/faker from npm) gives labelled
tables in each locale's own data, the shape the scoring reads."""

from __future__ import annotations

import datetime as dt
import re

from bench.heldout_fakerjs import (
    FAKERJS_DEVELOPMENT_LOCALES,
    FAKERJS_HELD_OUT_LOCALES,
    FAKERJS_LOCALES,
    fakerjs_tables,
    language,
)


def test_each_locale_gives_patients_and_vendors_in_its_own_data() -> None:
    tables = fakerjs_tables(4, ["de_CH", "ja"])
    assert [(t.source, t.name) for t in tables] == [
        ("fakerjs:de_CH", "patients"),
        ("fakerjs:de_CH", "vendors"),
        ("fakerjs:ja", "patients"),
        ("fakerjs:ja", "vendors"),
    ]
    swiss, japanese = tables[0], tables[2]
    columns = {c.name: c for c in swiss.columns}
    assert all(re.fullmatch(r"\d{4}", str(v)) for v in columns["zip_code"].values)
    assert columns["zip_code"].tags == {"PII.PostalCode"}
    assert columns["street_address"].ignore == {"PII.Location", "PII.PostalCode", "PII.PersonName"}
    assert all(isinstance(v, dt.date) for v in columns["date_of_birth"].values)
    assert not columns["admitted_on"].tags and not columns["ward"].tags
    given = {c.name: c for c in japanese.columns}["given_name"].values
    assert all(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", str(v)) for v in given), given
    assert all(len(c.values) == 4 for t in tables for c in t.columns)


def test_the_same_seed_gives_the_same_tables() -> None:
    first = fakerjs_tables(3, ["pl"])
    again = fakerjs_tables(3, ["pl"])
    assert [c.values for t in first for c in t.columns] == [
        c.values for t in again for c in t.columns
    ]


def test_locales_and_languages() -> None:
    assert len(FAKERJS_LOCALES) == len(set(FAKERJS_LOCALES)) == 58
    assert "en_AU_ocker" not in FAKERJS_LOCALES
    assert language("fakerjs:sr_RS_latin") == language("sr_RS_latin") == "sr"


def test_the_halves_share_no_language() -> None:
    held_out = {language(locale) for locale in FAKERJS_HELD_OUT_LOCALES}
    development = {language(locale) for locale in FAKERJS_DEVELOPMENT_LOCALES}
    assert not held_out & development
    assert sorted(FAKERJS_HELD_OUT_LOCALES + FAKERJS_DEVELOPMENT_LOCALES) == sorted(FAKERJS_LOCALES)
    assert {"de_AT", "de_CH"} <= set(FAKERJS_DEVELOPMENT_LOCALES)  # beside de, never across
