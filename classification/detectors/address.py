"""PII.Address: a house number next to a street word (several languages) or a street shape.

Street words are matched as whole words (``rue``, ``via``, ``calle``) or as the end of a
compound (``Liebeltweg``, ``Kerkstraat``). A number-first line of capitalised words
(``58683 Mitchell Parks``) also counts; NER places inside the text add to the share.
"""

from __future__ import annotations

import re

from .base import (
    MEDIUM,
    Finding,
    PreparedColumn,
    has_hint,
    starts_like_name,
    without_marks,
    without_type_prefix,
)
from .masking import mask_words

_STREET_WORDS = (
    "street|st|avenue|ave|road|rd|lane|ln|drive|dr|boulevard|blvd|court|ct|way|place|pl|"
    "square|sq|parkway|pkwy|terrace|circle|cir|trail|highway|hwy|suite|apt|apartment|unit|flat|"
    "po box|rue|chemin|impasse|allée|quai|route|cours|calle|avenida|plaza|paseo|camino|"
    "carrera|ronda|cañada|travesía|vía|callejón|glorieta|pasaje|alameda|rambla|cuesta|"
    "urbanización|via|viale|piazza|corso|largo|vicolo|strada|contrada|borgo|incrocio|"
    "rotonda|piazzale|canale|stretto|piazzetta|appartamento|piano|piso|puerta|straße|strasse|"
    "str|platz|allee|gasse|"
    "straat|laan|plein|gracht|kade|singel|dreef|steeg|dijk|weg|hof|park|ring|damm|ufer|"
    # Portuguese, Mexican Spanish, Nordic and Baltic street types
    "rua|praça|travessa|estrada|rodovia|av|periférico|andador|viaducto|corredor|circuito|"
    "privada|prolongación|retorno|cerrada|calzada|diagonal|gade|vej|vei|gata|gatan|katu|"
    "tänav|põik|maantee|puiestee|iela|gatvė"
)
_NATIONAL_STREET_WORDS = (
    # Azerbaijani (küçəsi, prospekti, döngəsi; rayon, qəsəbə), Georgian (ქუჩა, გამზირი,
    # ჩიხი), Armenian (փողոց, պողոտա; ք. city, բն. flat), Vietnamese (đường, phố, hẻm,
    # ngõ, phường), Bengali and Nepali (রোড, সড়ক, লেন; मार्ग, सडक): street types and the
    # abbreviations these countries write before or after the street's name (the short
    # ones with their dot: "pr." and "ray.", not "pr" or "ray")
    r"küç|küçəsi|pr\.|prospekti|döngə|döngəsi|ray\.|qəs\.|qəsəbəsi|"
    r"ქ\.|ქუჩა|გამზ\.|გამზირი|ჩიხი|შესახვევი|"
    r"փ\.|փողոց|պող\.|պողոտա|ք\.|բն\.|"
    "đường|phố|hẻm|ngõ|ngách|phường|"
    "রোড|সড়ক|লেন|मार्ग|सडक"
)
# The shape checks read values without combining marks (রোড -> রড): so do the words. These
# count beside a house number only ("pr", "ք" and "phố" start ordinary phrases too).
_STREET_WORD = re.compile(
    rf"(?<!\w)(?:{_STREET_WORDS}|{without_marks(_NATIONAL_STREET_WORDS)})\.?(?!\w)",
    re.IGNORECASE,
)
_STREET_SUFFIX = re.compile(
    r"\w{3,}(?:straße|strasse|str\.|straat|laan|weg|plein|gracht|kade|singel|hof|dreef|"
    r"gasse|allee|platz|ring|damm|steeg|dijk|baan|boulevard|markt|pad|plantsoen|burg|"
    r"gatan|gata|gate|vägen|veien|vej|gade|katu|kuja|tänav|iela|gatvė)(?!\w)",
    re.IGNORECASE,
)
# "58683 Mitchell Parks", "3118 Бумов Pine": a number, then capitalised words in any script.
_NUMBER_FIRST = re.compile(
    r"\d{1,6}[A-Za-z]?,? ((?:[^\W\d_][\w'.-]+ ?){2,5})"
    # "6/9 सैनी", "87/095 राजीव कपूर": a house and plot number (India), then one or more words
    # "2/19/302 Huỳnh Tấn Phát": a lane's and alley's numbers too (Vietnam)
    r"|\d{1,5}(?:/\d{1,5}){1,3},? ((?:[^\W\d_][\w'.-]+ ?){1,5})"
)
_HOUSE_NUMBER = re.compile(r"(?<![\d.:])\d{1,5}(?:[/-]\d{1,5})?[A-Za-z]?(?![\d:]|\.\d)")
_DIGITS = re.compile(r"\d+")
_LEADING_STREET_WORD = re.compile(rf"(?:{_STREET_WORDS})\b", re.IGNORECASE)
_POSTAL_LINE = re.compile(
    r"(?m)(?:^|, )(?:\d{4,6}|[1-9]\d{3} ?[A-Z]{2}|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"
    r"|\d{4,5}-\d{3,4}|\d{2}-\d{3}"  # "3250-809 Trancoso", "02-123 Warszawa"
    r"|[A-Z]{2} \d{5}(?:-\d{4})?"
    # "679 59 Καλαμάτα", "ΤΚ 060 51 Μυτιλήνη", "LV-1010 Rīga": grouped or prefixed codes
    r"|(?:[^\W\d_]{1,3}[ -])?\d{3} \d{2}|[^\W\d_]{1,3}[ -]\d{4,6})(?:$|[ ,])"
    # "San Natalia los bajos, SON 20261": the code ends the town line
    r"|, (?:[^\W\d_.]{1,4}\.? ){1,2}\d{4,6}(?:-\d{3,4})?$"
    # "Dewas - 415555", "Bahadurganj-225260": a town, then its PIN code (India)
    r"|[^\W\d_]{2,} ?- ?\d{6}$"
)
# A house number written with its marker: "буд. 699", "д. 4", "# 2-91", "№ 5", "nº 67",
# "Số 17", "বাসা নং ৭৮" (Bengali: house no.).
_MARKERS = f"буд|д|дом|кв|стр|корп|№|#|n[°º]|no|nr|číslo|br|số|{without_marks('নং')}"
_MARKED_NUMBER = re.compile(rf"(?<!\w)(?:{_MARKERS})\.? ?\d{{1,5}}", re.IGNORECASE)
# Chinese, Japanese and Korean addresses: administrative units, then block numbers.
_CJK_ADDRESS = re.compile(
    r"[\u3040-\u30ff\u4e00-\u9fff]{1,12}[都道府県省市区町村郡县镇縣區鎮鄉路街].*\d+"
    r"(?:丁目|番地?|[号號]|弄|楼|室|座)"
    # "宜都路p座", "朝阳马街U座 857900": a road or street, then a building letter or number
    r"|[\u4e00-\u9fff]{1,12}[路街道巷](?:\d{1,5}[号號]|[A-Za-z0-9]{1,3}座)"
    # "横店六条793号", "红钢城胡同716号", "四維路9號": any street or lane, then its number and
    # 号 (號 in traditional characters)
    r"|[\u4e00-\u9fff]{2,12}\d{1,5}[号號]"
    r"|[\uac00-\ud7a3]+(?:로|길|거리)\s?(?:지하)?\d+"
    # "경기도 안산시 상록구 ... 980": a province or city, a district, then a number
    r"|[\uac00-\ud7a3]+(?:시|도) [\uac00-\ud7a3]+(?:구|군|시) .*\d+"
)
# Any script: words, then a house number ("Beskydská 88", "Praça de Magalhães, 67",
# "Av. Omar Nuñez N° 6447"), optionally a unit after it ("буд. 764 кв. 59").
_WORD = r"[^\W\d_][^\W\d_'\u2019.-]*\.?"
# "Волгоградска 4в", "Михаило Апостолски 2а/8": the letter after a number in any script
_NUMBER = r"(?:(?:no|nr|n°|nº|#)\.? ?)?\d{1,5}[^\W\d_]?(?:[/-]\d{1,5}[^\W\d_]?)?\.?"
_WORDS_THEN_NUMBER = re.compile(
    # "Corredor Sur Bañuelos 514 452", "Viaducto Sur Gaytán 027 Edif. 197 , Depto. 337":
    # a second number (the interior), or a unit's word and number, may follow
    rf"{_WORD}(?: {_WORD}){{0,5}},? {_NUMBER}"
    rf"(?: ?,? {_WORD}(?: {_WORD})?,? {_NUMBER}| {_NUMBER}){{0,2}}"
    rf"(?:, \d{{4,6}} {_WORD}(?: {_WORD}){{0,3}})?"  # "Myhremarka 6, 8054 Vidarvåg"
    # "עגור 13, שדי תרומות, 5686507": the town, then the postal code last
    rf"(?:, {_WORD}(?: {_WORD}){{0,3}})?(?:,? \d{{4,7}})?",
    re.IGNORECASE,
)
_HINT_TOKENS = (
    "address",
    "addr",
    "street",
    "addr1",
    "address1",
    "address2",
    "line1",
    "line2",
    "adresse",
    "direccion",
    "indirizzo",
    "strasse",
    "residence",
    "domicile",
    "shipto",
    "billto",
    "mailing",
)
_HINT_PHRASES = (
    "address",
    "street",
    "adres",
    "direccion",
    "indirizzo",
    "shipto",
    "billto",
    "deliverto",
)


def _address_kind(text: str) -> str | None:
    """ "street" (a street word or known shape), "shape" (words then a number), or None."""
    text = without_marks(text)
    if "\n" in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        kinds = {_street_line_kind(line) for line in lines[:2]} if 2 <= len(lines) <= 5 else set()
        if "street" in kinds or _is_postal_block(text):
            return "street"
        if "shape" in kinds:
            return "shape"
    return _street_line_kind(text)


def _is_postal_block(text: str) -> bool:
    return "\n" in text and bool(_HOUSE_NUMBER.search(text)) and bool(_POSTAL_LINE.search(text))


def _street_line_kind(text: str) -> str | None:
    words = len(text.split())
    if 3 <= len(text) <= 160 and _CJK_ADDRESS.search(text):
        return "street"  # "刘街l座": dense scripts say a street in four characters
    if not 6 <= len(text) <= 160 or words > 16:
        return None
    if _MARKED_NUMBER.search(text) and sum(char.isalpha() for char in text) >= 4:
        return "street"
    if not _HOUSE_NUMBER.search(text):
        # "rue de Guichard", "Via Adele": a street without a number, only as a short line
        return "street" if words <= 6 and _LEADING_STREET_WORD.match(text) else None
    if _STREET_WORD.search(text) or _STREET_SUFFIX.search(text) or _number_first(text):
        return "street"
    unprefixed = without_type_prefix(text)  # "ul. Krasickiego 00", "пер. Лесной, 4"
    if starts_like_name(unprefixed) and _WORDS_THEN_NUMBER.fullmatch(unprefixed):
        return "shape"
    return None


def _number_first(text: str) -> bool:
    match = _NUMBER_FIRST.match(text)
    words = match.group(match.lastindex or 1).split() if match else []
    return match is not None and all(starts_like_name(word) for word in words)


def _varied(prefixes: list[str]) -> bool:
    """Streets differ from row to row; "Fulfilment centre 01..20" repeats its words."""
    return len(set(prefixes)) >= 0.3 * len(prefixes)


def detect_address(column: PreparedColumn) -> list[Finding]:
    if column.type_family not in ("text", "json"):
        return []
    streets = checked = 0
    shaped: list[str] = []
    examples: list[str] = []
    for text in column.texts:
        if checked == 25 and streets + len(shaped) == 0:
            break
        checked += 1
        kind = _address_kind(text)
        if kind == "street":
            streets += 1
        elif kind == "shape":
            shaped.append(_DIGITS.sub("", text).strip())
        else:
            continue
        if len(examples) < 3:
            examples.append(mask_words(text))
    matched = streets + (len(shaped) if _varied(shaped) else 0)
    return [
        Finding(
            tag="PII.Address",
            detector="street_pattern",
            matched=matched,
            checked=checked,
            strength=MEDIUM,
            examples=examples if matched else [],
            name_hint=has_hint(column, _HINT_TOKENS, _HINT_PHRASES),
            extra={"street_shape_only": matched - streets},
        )
    ]
