"""A third held-out generator for bench/classify.py: ``@faker-js/faker`` from npm.

Python Faker and mimesis were both read while the detectors were built (their tuning and
development locales); faker-js never was: its name, street, city, postcode, company and
phone lists are its own, written by other people, and its tables here have shapes of their
own (patients and vendors). The locales were chosen by a rule, fixed before any detector saw
their data (faker-js 10.6.0, stop 20): every faker-js locale with its own first names, last
names, street data, postcodes and cities, except the parody locale ``en_AU_ocker``.
Languages the detectors were tuned on are included (de, fr, en…): this set tests another
generator's data, the report says which part is which. The locales are split in two by
language (``FAKERJS_DEVELOPMENT_LOCALES``, ``FAKERJS_HELD_OUT_LOCALES``).

The tables come from bench/fakerjs_tables.mjs (node, with the project's npm packages:
``npm install``). Like every held-out set, the held-out half's errors are not read: once
they are, it becomes development data and is named so here.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.heldout import HELD_OUT_SEED, HeldOutColumn, HeldOutTable

SCRIPT = Path(__file__).with_name("fakerjs_tables.mjs")
FAKERJS_LOCALES = (
    "af_ZA",
    "ar",
    "az",
    "cs_CZ",
    "da",
    "de",
    "de_AT",
    "de_CH",
    "dv",
    "el",
    "en",
    "en_AU",
    "en_GH",
    "en_IN",
    "en_NG",
    "en_NP",
    "en_ZA",
    "es",
    "es_MX",
    "fa",
    "fi",
    "fr",
    "fr_BE",
    "fr_CH",
    "fr_SN",
    "he",
    "hr",
    "hu",
    "id_ID",
    "it",
    "ja",
    "ka_GE",
    "ko",
    "lv",
    "mk",
    "nb_NO",
    "ne",
    "nl",
    "nl_BE",
    "pl",
    "pt_BR",
    "pt_PT",
    "ro",
    "ro_MD",
    "ru",
    "sk",
    "sl_SI",
    "sr_RS_latin",
    "sv",
    "th",
    "tr",
    "uk",
    "ur",
    "uz_UZ_latin",
    "vi",
    "zh_CN",
    "zh_TW",
    "zu_ZA",
)


def language(source: str) -> str:
    """``fakerjs:de_CH`` or ``de_CH`` → ``de``."""
    return source.rsplit(":", 1)[-1].split("_", 1)[0]


# Split by language before any error was read (stop 20): the languages in alphabetical
# order, alternately held out and development, so no language (and no sister locale: de,
# de_AT, de_CH) is on both sides. The development half's errors may be read; once the
# held-out half's are, it becomes development data too.
_LANGUAGES = sorted({language(locale) for locale in FAKERJS_LOCALES})
FAKERJS_HELD_OUT_LOCALES = tuple(
    locale for locale in FAKERJS_LOCALES if _LANGUAGES.index(language(locale)) % 2 == 0
)
FAKERJS_DEVELOPMENT_LOCALES = tuple(
    locale for locale in FAKERJS_LOCALES if locale not in FAKERJS_HELD_OUT_LOCALES
)
# The languages of bench/heldout.py's TUNING_LOCALES (en, de, fr, es, it, nl): reported apart.
TUNED_LANGUAGES = frozenset({"en", "de", "fr", "es", "it", "nl"})


def fakerjs_tables(
    rows: int, locales: Sequence[str] = FAKERJS_LOCALES, seed: int = HELD_OUT_SEED
) -> list[HeldOutTable]:
    """Each locale's patients and vendors tables, ``rows`` rows each."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("bench/classify.py's faker-js section needs node (and `npm install`)")
    request = json.dumps({"locales": list(locales), "rows": rows, "seed": seed})
    result = subprocess.run(
        [node, str(SCRIPT), request], capture_output=True, text=True, cwd=SCRIPT.parent
    )
    if result.returncode != 0:
        raise SystemExit(f"bench/fakerjs_tables.mjs failed:\n{result.stderr.strip()}")
    return [_table(table) for table in json.loads(result.stdout)]


def _table(document: dict[str, object]) -> HeldOutTable:
    columns = []
    for column in document["columns"]:  # type: ignore[attr-defined]
        values = column["values"]
        if column["data_type"] == "date":
            values = [dt.date.fromisoformat(value) for value in values]
        columns.append(
            HeldOutColumn(
                column["name"],
                column["data_type"],
                values,
                frozenset(column["tags"]),
                frozenset(column["ignore"]),
            )
        )
    return HeldOutTable(str(document["source"]), str(document["name"]), columns)
