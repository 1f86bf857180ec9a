"""Value generators for the demo shop: realistic national ids, phones, cards, secrets and
free text per locale (Faker with a fixed seed)."""

from __future__ import annotations

import base64
import json
import random
import string
from datetime import date, datetime, timedelta

from faker import Faker
from stdnum import luhn
from stdnum.es import dni
from stdnum.iso7064 import mod_11_10

from classification.sample_data.schema import CUSTOMER_LOCALES, NOW


class ShopFaker:
    """Seeded Faker instances per locale plus one ``random.Random`` for plain choices."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers: dict[str, Faker] = {}
        for offset, locale in enumerate(CUSTOMER_LOCALES):
            fake = Faker(locale)
            fake.seed_instance(seed + offset)
            self.fakers[locale] = fake
        self.us = self.fakers["en_US"]

    def locale(self) -> str:
        locales = list(CUSTOMER_LOCALES)
        weights = [share for _, share in CUSTOMER_LOCALES.values()]
        return self.rng.choices(locales, weights)[0]

    def moment(self, days_back: int = 365) -> datetime:
        """A second within ``days_back`` days before the data set's "now"."""
        return NOW - timedelta(seconds=self.rng.randrange(days_back * 86400))

    def birth_date(self, min_age: int, max_age: int) -> date:
        # Faker's date_of_birth counts from today, which would change the rows daily.
        return NOW.date() - timedelta(days=self.rng.randint(min_age * 365 + 1, max_age * 365))

    def digits(self, count: int) -> str:
        return "".join(self.rng.choice(string.digits) for _ in range(count))

    def token(self, alphabet: str, count: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(count))


def national_id(gen: ShopFaker, locale: str) -> str:
    """A valid national id for the customer's country (Faker's en_GB/de_DE/es_ES ``ssn()``
    return placeholders or US numbers, and its ``nif()`` ignores the seed)."""
    fake = gen.fakers[locale]
    if locale == "en_GB":
        return _nino(gen)
    if locale == "de_DE":
        return _de_idnr(gen)
    if locale == "es_ES":
        body = gen.digits(8)
        return body + dni.calc_check_digit(body)
    return fake.ssn()


def _nino(gen: ShopFaker) -> str:
    letters = "ABCEGHJKLMNPRSTWXYZ"
    while (prefix := gen.token(letters, 2)) in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        pass
    body, suffix = gen.digits(6), gen.rng.choice("ABCD")
    if gen.rng.random() < 0.5:
        return f"{prefix} {body[:2]} {body[2:4]} {body[4:]} {suffix}"
    return f"{prefix}{body}{suffix}"


def _de_idnr(gen: ShopFaker) -> str:
    """Steuer-IdNr: 10 digits, not starting with 0, exactly one digit twice, ISO 7064 check."""
    while True:
        digits = gen.rng.sample(string.digits, 9)
        digits.insert(gen.rng.randrange(10), gen.rng.choice(digits))
        body = "".join(digits)
        if body[0] != "0":
            return body + mod_11_10.calc_check_digit(body)


def phone(gen: ShopFaker, locale: str) -> str:
    fake = gen.fakers[locale]
    if locale == "en_US" and gen.rng.random() < 0.3:
        return f"+1 {fake.numerify('(2##) ###-####')}"
    return fake.phone_number()


def card_number(gen: ShopFaker) -> str:
    pan = gen.us.credit_card_number()
    style = gen.rng.random()
    if style < 0.4:
        return pan
    separator = " " if style < 0.7 else "-"
    return separator.join(pan[index : index + 4] for index in range(0, len(pan), 4))


def order_number(gen: ShopFaker) -> str:
    """Ten-digit order numbers; half pass Luhn, which must not make them card numbers."""
    body = str(gen.rng.randint(100_000_000, 999_999_999))
    if gen.rng.random() < 0.5:
        return body + luhn.calc_check_digit(body)
    return body + gen.rng.choice(string.digits)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(gen: ShopFaker, subject: int) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64url(
        json.dumps(
            {
                "sub": str(subject),
                "iat": gen.rng.randint(1_700_000_000, 1_800_000_000),
                "scope": "shop",
            }
        ).encode()
    )
    return f"{header}.{payload}.{_b64url(gen.rng.randbytes(32))}"


def api_key(gen: ShopFaker) -> str:
    if gen.rng.random() < 0.5:
        return "AKIA" + gen.token(string.ascii_uppercase + string.digits, 16)
    return "ghp_" + gen.token(string.ascii_letters + string.digits, 36)


def bcrypt_like(gen: ShopFaker) -> str:
    return "$2b$12$" + gen.token("./" + string.ascii_letters + string.digits, 53)


_HEALTH_LINES = (
    "My insulin delivery for my diabetes is late again, I only have two days left.",
    "The metformin refill I ordered for my type 2 diabetes arrived damaged.",
    "I need the asthma inhaler spacer urgently, my doctor says my asthma is worse.",
    "Please rush the blood pressure monitor, I was diagnosed with hypertension last week.",
    "The prenatal vitamins for my pregnancy were missing from the box.",
    "My epilepsy medication levetiracetam was not in the parcel.",
    "I am allergic to latex and the gloves you sent contain latex, I had a reaction.",
)
PLAIN_LINES = (
    "The blender arrived with a cracked lid.",
    "The parcel was left in the rain and the box is soaked.",
    "I was charged twice for the same order.",
    "The size chart is wrong, the shoes are too small.",
    "Tracking has not updated for a week.",
    "The colour is different from the picture on the website.",
    "Can I change the delivery slot to the afternoon?",
)
SUBJECTS = (
    "Late delivery",
    "Damaged item",
    "Wrong item",
    "Refund request",
    "Billing question",
    "Missing item",
    "Change of delivery",
)


def ticket_body(gen: ShopFaker) -> str:
    kind = gen.rng.random()
    if kind < 0.3:
        return gen.rng.choice(_HEALTH_LINES)
    if kind < 0.6:
        fake = gen.fakers[gen.locale()]
        return (
            f"{gen.rng.choice(PLAIN_LINES)} Please ask {fake.name()} at your "
            f"{fake.city()} office to call me back."
        )
    return f"{gen.rng.choice(PLAIN_LINES)} {gen.rng.choice(PLAIN_LINES)}"
