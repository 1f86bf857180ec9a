"""PII.Location from country names: a column of countries locates its rows' people.

Countries are resolved with ``pycountry`` (ISO 3166 names, official names and alpha-3
codes), with Babel's country names in every language it has (Deutschland, Россия, 日本)
and with pycountry's translations of the official names (Česká republika), as tables write
them in their own language. Bare two-letter codes are left alone, as
``entities.detect_location`` leaves them: they describe (a currency's country, a locale) as
often as they locate someone.
"""

from __future__ import annotations

import functools

import pycountry

from .base import MEDIUM, Finding, PreparedColumn
from .masking import mask_words
from .resources import cached_table

COUNTRY_SHARE = 0.8


def _localised_names() -> dict[str, str]:
    from babel import Locale, localedata

    names: dict[str, str] = {}
    for language in localedata.locale_identifiers():
        if "_" not in language:  # the language's own names; regional variants repeat them
            for code, name in Locale.parse(language).territories.items():
                if len(code) == 2 and code.isalpha():
                    names.setdefault(name.casefold(), code)
    return names


def _translated_iso_names() -> dict[str, str]:
    """ISO 3166's names, official names included, in every language pycountry translates
    them to (its iso-codes catalogues): "Česká republika", "中華民國", "Республика Казахстан",
    the long forms Babel's short names leave out."""
    import gettext
    import os

    names: dict[str, str] = {}
    for language in sorted(os.listdir(pycountry.LOCALES_DIR)):
        try:
            catalogue = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, [language])
        except OSError:
            continue
        for country in pycountry.countries:
            for field in ("name", "official_name", "common_name"):
                value = getattr(country, field, None)
                if value:
                    names.setdefault(catalogue.gettext(value).casefold(), country.alpha_2)
    return names


@functools.cache
def _countries() -> dict[str, str]:
    """Every ISO 3166 name, official and common name and code, casefolded -> alpha-2."""
    names: dict[str, str] = dict(cached_table("country-names-{version}", "babel", _localised_names))
    translated = cached_table("country-names-iso-{version}", "pycountry", _translated_iso_names)
    for name, code in translated.items():
        names.setdefault(name, code)
    for country in pycountry.countries:
        for field in ("alpha_2", "alpha_3", "name", "official_name", "common_name"):
            value = getattr(country, field, None)
            if value:
                names[value.casefold()] = country.alpha_2
    return names


@functools.cache
def _state_forms() -> frozenset[str]:
    """ "republic of", "kingdom of the", "grand duchy of": the state forms that ISO 3166's
    official names put before a country's short name ("Republic of Ireland" is how many
    tables write Ireland, whose official name in ISO 3166 is the short one)."""
    forms: set[str] = set()
    for country in pycountry.countries:
        official = getattr(country, "official_name", None)
        for short in (country.name, getattr(country, "common_name", None)):
            if official and short and official.endswith(f" {short}"):
                forms.add(official[: -len(short)].strip().casefold())
    return frozenset(forms)


def country_code(text: str) -> str | None:
    """ISO alpha-2 for a country name or code ("Germany", "DE", "DEU"), else None.

    A code counts only in capitals: "Lie" and "Per" are names, "LIE" and "PER" codes.
    A name behind a state form ("Republic of Ireland") is that country."""
    text = text.strip()
    if not 2 <= len(text) <= 60 or (_is_code(text) and not text.isupper()):
        return None
    found = _countries().get(text.casefold())
    if found is None and " of " in text:
        form, _, short = text.casefold().rpartition(" of ")
        if f"{form} of" in _state_forms() or f"{form} of the" in _state_forms():
            found = _countries().get(short.removeprefix("the "))
    return found


def _is_code(text: str) -> bool:
    """DE, DEU: a code. مصر, 中国, Irak are names however short (only Latin has codes)."""
    return len(text) <= 3 and text.isascii()


def country_share(column: PreparedColumn, *, names_only: bool = False) -> float:
    head = column.texts[:40]
    if not head:
        return 0.0
    found = sum(1 for text in head if (not names_only or not _is_code(text)) and country_code(text))
    return found / len(head)


def detect_country(column: PreparedColumn) -> list[Finding]:
    if column.type_family != "text" or country_share(column, names_only=True) < COUNTRY_SHARE:
        return []
    return [
        Finding(
            tag="PII.Location",
            detector="country_names",
            matched=sum(1 for text in column.texts if country_code(text)),
            checked=len(column.texts),
            strength=MEDIUM,
            examples=[mask_words(text) for text in column.texts[:3]],
        )
    ]
