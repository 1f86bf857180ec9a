"""Warden's detectors: pure functions over a prepared column sample, one file per family.

This module is the one place a detector is registered; the classifier runs every entry of
``VALUE_DETECTORS`` and then, after NER, ``ENTITY_DETECTORS``. A new detector is a function
``(PreparedColumn) -> list[Finding]`` added to one of these tuples, and its tag to ``TAGS``.
"""

from __future__ import annotations

from .address import detect_address
from .banking import detect_bank_account, detect_iban
from .base import ColumnSample, Detector, Finding, PreparedColumn, TagSuggestion
from .birthdate import detect_date_of_birth
from .cities import detect_city
from .email import detect_email
from .entities import detect_location, detect_organization, detect_person_name
from .health import detect_health_text
from .names import detect_person_name_frequency
from .national_id import detect_national_id
from .network import detect_ip_address
from .passport import detect_passport
from .payment import detect_card_number
from .phone import detect_phone
from .places import detect_country
from .postal import detect_postal_code
from .secrets import detect_credential

# Detectors over values alone; they run first, and their results decide which columns
# still need NER.
VALUE_DETECTORS: tuple[Detector, ...] = (
    detect_email,
    detect_phone,
    detect_card_number,
    detect_iban,
    detect_bank_account,
    detect_national_id,
    detect_ip_address,
    detect_passport,
    detect_date_of_birth,
    detect_postal_code,
    detect_address,
    detect_country,
    detect_city,
    detect_credential,
    detect_health_text,
)

# Detectors that read the NER results stored on the column by ``ner.run_ner``.
ENTITY_DETECTORS: tuple[Detector, ...] = (
    detect_person_name,
    detect_person_name_frequency,
    detect_location,
    detect_organization,
)

DETECTORS: tuple[Detector, ...] = VALUE_DETECTORS + ENTITY_DETECTORS

TAGS: tuple[str, ...] = (
    "PII.Email",
    "PII.Phone",
    "PII.PersonName",
    "PII.Address",
    "PII.PostalCode",
    "PII.DateOfBirth",
    "PII.NationalID",
    "PII.IPAddress",
    "PII.Passport",
    "PII.Location",
    "PII.Organization",
    "PCI.CardNumber",
    "Financial.IBAN",
    "Financial.BankAccount",
    "Secret.Credential",
    "PHI.FreeText",
)

# Tags that describe what a whole value *is*: when two of them claim the same values of a
# column (a dashed SSN also parses as a phone number), only the stronger one is kept.
VALUE_SHAPE_TAGS: frozenset[str] = frozenset(
    {
        "PII.Email",
        "PII.Phone",
        "PII.PostalCode",
        "PII.DateOfBirth",
        "PII.NationalID",
        "PII.IPAddress",
        "PII.Passport",
        "PCI.CardNumber",
        "Financial.IBAN",
        "Financial.BankAccount",
        "Secret.Credential",
    }
)

__all__ = [
    "DETECTORS",
    "ENTITY_DETECTORS",
    "TAGS",
    "VALUE_DETECTORS",
    "VALUE_SHAPE_TAGS",
    "ColumnSample",
    "Detector",
    "Finding",
    "PreparedColumn",
    "TagSuggestion",
]
