"""Realistic fake "shop" databases for scan tests and benchmarks (no Django imports).

The same schema and the same rows (Faker, fixed seed) on SQLite, PostgreSQL and MariaDB:

    shop_sqlite_create(path)                          -> rows per table
    shop_postgresql_create(conninfo, schema="shop_x") -> rows per table (COPY)
    shop_mysql_create(database="shop_x")              -> rows per table (executemany)

``SHOP_EXPECTED_TAGS`` names the tags a scan must find on each sensitive column and
``SHOP_NON_SENSITIVE`` the columns that must get no tag, so scan tests can measure recall
and precision. Columns in neither (``customers.country``, ``employees.salary``,
``payments.card_expiry``, ``countries.name``, the SQLite-only ``legacy_contacts``) are
debatable and not judged. Free text in ``support_tickets.body`` also names people and
cities; a PersonName or Location tag there is tolerated, PHI.FreeText is required.

Awkward values for bad-input coverage live in ``customer_profiles`` (JSON, an array, binary
thumbnails, a NULL-only column, ~200 KB texts) and, on SQLite only, ``legacy_contacts``
(latin-1 bytes stored as TEXT).
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import string
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from faker import Faker
from stdnum import luhn
from stdnum.es import dni
from stdnum.iso7064 import mod_11_10

# Customers' home locales and how often each occurs (US customers carry SSNs).
CUSTOMER_LOCALES: dict[str, tuple[str, float]] = {
    "en_US": ("US", 0.40),
    "en_GB": ("GB", 0.10),
    "de_DE": ("DE", 0.10),
    "fr_FR": ("FR", 0.10),
    "es_ES": ("ES", 0.10),
    "it_IT": ("IT", 0.10),
    "nl_NL": ("NL", 0.10),
}
BASE_ROWS = {
    "customers": 2000,
    "customer_profiles": 200,
    "employees": 200,
    "products": 300,
    "warehouses": 20,
    "orders": 3000,
    "payments": 3000,
    "support_tickets": 800,
    "access_log": 3000,
}
HUGE_TEXT_CHARS = 200_000
NOW = datetime(2026, 11, 1)

SHOP_EXPECTED_TAGS: dict[str, set[str]] = {
    "customers.first_name": {"PII.PersonName"},
    "customers.last_name": {"PII.PersonName"},
    "customers.email": {"PII.Email"},
    "customers.phone": {"PII.Phone"},
    "customers.date_of_birth": {"PII.DateOfBirth"},
    "customers.street_address": {"PII.Address"},
    "customers.city": {"PII.Location"},
    "customers.postal_code": {"PII.PostalCode"},
    "customers.ssn": {"PII.NationalID"},
    "customers.passport_number": {"PII.Passport"},
    "employees.full_name": {"PII.PersonName"},
    "employees.work_email": {"PII.Email"},
    "employees.mobile": {"PII.Phone"},
    "employees.iban": {"Financial.IBAN"},
    "employees.bank_account_number": {"Financial.BankAccount"},
    "employees.routing_number": {"Financial.BankAccount"},
    "employees.date_of_birth": {"PII.DateOfBirth"},
    "employees.api_key": {"Secret.Credential"},
    "employees.password_hash": {"Secret.Credential"},
    "orders.shipping_address": {"PII.Address"},
    "payments.card_number": {"PCI.CardNumber"},
    "payments.cardholder_name": {"PII.PersonName"},
    "support_tickets.body": {"PHI.FreeText"},
    "access_log.client_ip": {"PII.IPAddress"},
    "access_log.session_token": {"Secret.Credential"},
}


def _columns(table: str, names: str) -> set[str]:
    return {f"{table}.{name}" for name in names.split()}


SHOP_NON_SENSITIVE: set[str] = set().union(
    _columns("customers", "id created_at loyalty_tier marketing_opt_in"),
    _columns("customer_profiles", "customer_id preferences interests thumbnail legacy_fax bio"),
    _columns("employees", "id hire_date manager_id"),
    _columns("products", "id sku name price stock_count firmware_version"),
    _columns("warehouses", "id code name capacity"),
    _columns("currencies", "code name symbol minor_units"),
    _columns("countries", "iso_code currency"),
    _columns(
        "orders", "id customer_id order_number sku quantity total_amount currency status placed_at"
    ),
    _columns("payments", "id order_id amount processor_reference paid_at"),
    _columns("support_tickets", "id customer_id subject created_at priority"),
    _columns("access_log", "id occurred_at user_agent path status_code"),
)

# Column kinds, and how each engine spells them.
ENGINE_TYPES: dict[str, dict[str, str]] = {
    "postgresql": {
        "pk": "integer PRIMARY KEY",
        "int": "integer",
        "text": "text",
        "date": "date",
        "timestamp": "timestamp",
        "bool": "boolean",
        "money": "numeric(12,2)",
        "json": "jsonb",
        "text_array": "text[]",
        "binary": "bytea",
        "huge_text": "text",
    },
    "mysql": {
        "pk": "INT PRIMARY KEY",
        "int": "INT",
        "text": "VARCHAR(255)",
        "date": "DATE",
        "timestamp": "DATETIME",
        "bool": "TINYINT(1)",
        "money": "DECIMAL(12,2)",
        "json": "JSON",
        "text_array": "JSON",
        "binary": "BLOB",
        "huge_text": "LONGTEXT",
    },
    "sqlite": {
        "pk": "INTEGER PRIMARY KEY",
        "int": "INTEGER",
        "text": "TEXT",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "bool": "BOOLEAN",
        "money": "NUMERIC",
        "json": "JSON",
        "text_array": "TEXT",
        "binary": "BLOB",
        "huge_text": "TEXT",
    },
}
# Free text that does not fit in VARCHAR(255) on MySQL.
_LONG_TEXT_COLUMNS = {"support_tickets.body", "access_log.user_agent", "access_log.session_token"}


@dataclass
class ShopTable:
    name: str
    columns: list[tuple[str, str]]  # (name, kind)
    rows: list[tuple[Any, ...]] = field(default_factory=list)


# --- value generators -------------------------------------------------------------------


class _ShopFaker:
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


def _national_id(gen: _ShopFaker, locale: str) -> str:
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


def _nino(gen: _ShopFaker) -> str:
    letters = "ABCEGHJKLMNPRSTWXYZ"
    while (prefix := gen.token(letters, 2)) in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        pass
    body, suffix = gen.digits(6), gen.rng.choice("ABCD")
    if gen.rng.random() < 0.5:
        return f"{prefix} {body[:2]} {body[2:4]} {body[4:]} {suffix}"
    return f"{prefix}{body}{suffix}"


def _de_idnr(gen: _ShopFaker) -> str:
    """Steuer-IdNr: 10 digits, not starting with 0, exactly one digit twice, ISO 7064 check."""
    while True:
        digits = gen.rng.sample(string.digits, 9)
        digits.insert(gen.rng.randrange(10), gen.rng.choice(digits))
        body = "".join(digits)
        if body[0] != "0":
            return body + mod_11_10.calc_check_digit(body)


def _phone(gen: _ShopFaker, locale: str) -> str:
    fake = gen.fakers[locale]
    if locale == "en_US" and gen.rng.random() < 0.3:
        return f"+1 {fake.numerify('(2##) ###-####')}"
    return fake.phone_number()


def _card_number(gen: _ShopFaker) -> str:
    pan = gen.us.credit_card_number()
    style = gen.rng.random()
    if style < 0.4:
        return pan
    separator = " " if style < 0.7 else "-"
    return separator.join(pan[index : index + 4] for index in range(0, len(pan), 4))


def _order_number(gen: _ShopFaker) -> str:
    """Ten-digit order numbers; half pass Luhn, which must not make them card numbers."""
    body = str(gen.rng.randint(100_000_000, 999_999_999))
    if gen.rng.random() < 0.5:
        return body + luhn.calc_check_digit(body)
    return body + gen.rng.choice(string.digits)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _jwt(gen: _ShopFaker, subject: int) -> str:
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


def _api_key(gen: _ShopFaker) -> str:
    if gen.rng.random() < 0.5:
        return "AKIA" + gen.token(string.ascii_uppercase + string.digits, 16)
    return "ghp_" + gen.token(string.ascii_letters + string.digits, 36)


def _bcrypt_like(gen: _ShopFaker) -> str:
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
_PLAIN_LINES = (
    "The blender arrived with a cracked lid.",
    "The parcel was left in the rain and the box is soaked.",
    "I was charged twice for the same order.",
    "The size chart is wrong, the shoes are too small.",
    "Tracking has not updated for a week.",
    "The colour is different from the picture on the website.",
    "Can I change the delivery slot to the afternoon?",
)
_SUBJECTS = (
    "Late delivery",
    "Damaged item",
    "Wrong item",
    "Refund request",
    "Billing question",
    "Missing item",
    "Change of delivery",
)


def _ticket_body(gen: _ShopFaker) -> str:
    kind = gen.rng.random()
    if kind < 0.3:
        return gen.rng.choice(_HEALTH_LINES)
    if kind < 0.6:
        fake = gen.fakers[gen.locale()]
        return (
            f"{gen.rng.choice(_PLAIN_LINES)} Please ask {fake.name()} at your "
            f"{fake.city()} office to call me back."
        )
    return f"{gen.rng.choice(_PLAIN_LINES)} {gen.rng.choice(_PLAIN_LINES)}"


# --- tables -------------------------------------------------------------------------------


def _count(table: str, scale: float) -> int:
    return max(1, round(BASE_ROWS[table] * scale))


def _lookup_tables() -> list[ShopTable]:
    currencies = ShopTable(
        "currencies",
        [("code", "text"), ("name", "text"), ("symbol", "text"), ("minor_units", "int")],
        [
            ("USD", "US Dollar", "$", 2),
            ("EUR", "Euro", "€", 2),
            ("GBP", "Pound Sterling", "£", 2),
            ("JPY", "Yen", "¥", 0),
            ("CHF", "Swiss Franc", "CHF", 2),
            ("SEK", "Swedish Krona", "kr", 2),
            ("CAD", "Canadian Dollar", "$", 2),
            ("AUD", "Australian Dollar", "$", 2),
        ],
    )
    countries = ShopTable(
        "countries",
        [("iso_code", "text"), ("name", "text"), ("currency", "text")],
        [
            ("US", "United States", "USD"),
            ("GB", "United Kingdom", "GBP"),
            ("DE", "Germany", "EUR"),
            ("FR", "France", "EUR"),
            ("ES", "Spain", "EUR"),
            ("IT", "Italy", "EUR"),
            ("NL", "Netherlands", "EUR"),
        ],
    )
    return [currencies, countries]


def _products(gen: _ShopFaker, count: int) -> ShopTable:
    nouns = (
        "Blender",
        "Kettle",
        "Router",
        "Desk Lamp",
        "Headphones",
        "Backpack",
        "Toaster",
        "Monitor",
        "Keyboard",
        "Drill",
        "Thermostat",
        "Camera",
    )
    rows = []
    for index in range(1, count + 1):
        sku = f"SKU-{gen.token(string.ascii_uppercase, 4)}-{index:04d}"
        name = f"{gen.rng.choice(('Pro', 'Mini', 'Max', 'Eco', 'Smart'))} {gen.rng.choice(nouns)}"
        firmware = ".".join(str(gen.rng.randint(0, 12)) for _ in range(4))
        rows.append(
            (
                index,
                sku,
                name,
                Decimal(gen.rng.randint(199, 99_999)) / 100,
                gen.rng.randint(0, 5000),
                firmware,
            )
        )
    return ShopTable(
        "products",
        [
            ("id", "pk"),
            ("sku", "text"),
            ("name", "text"),
            ("price", "money"),
            ("stock_count", "int"),
            ("firmware_version", "text"),
        ],
        rows,
    )


def _warehouses(gen: _ShopFaker, count: int) -> ShopTable:
    rows = [
        (index, f"WH-{index:03d}", f"Fulfilment centre {index:02d}", gen.rng.randint(1_000, 50_000))
        for index in range(1, count + 1)
    ]
    return ShopTable(
        "warehouses", [("id", "pk"), ("code", "text"), ("name", "text"), ("capacity", "int")], rows
    )


_CUSTOMER_COLUMNS = [
    ("id", "pk"),
    ("first_name", "text"),
    ("last_name", "text"),
    ("email", "text"),
    ("phone", "text"),
    ("date_of_birth", "date"),
    ("street_address", "text"),
    ("city", "text"),
    ("postal_code", "text"),
    ("country", "text"),
    ("ssn", "text"),
    ("passport_number", "text"),
    ("created_at", "timestamp"),
    ("loyalty_tier", "text"),
    ("marketing_opt_in", "bool"),
]


def _customers(gen: _ShopFaker, count: int) -> tuple[ShopTable, list[str]]:
    rows, addresses = [], []
    for index in range(1, count + 1):
        locale = gen.locale()
        fake = gen.fakers[locale]
        first, last = fake.first_name(), fake.last_name()
        street, city, postcode = fake.street_address(), fake.city(), fake.postcode()
        domain = gen.rng.choice(
            ("example.com", "mail.test", "shop.example.org", fake.free_email_domain())
        )
        email = f"{first}.{last}{gen.rng.randint(1, 999)}@{domain}".lower().replace(" ", "")
        rows.append(
            (
                index,
                first,
                last,
                email,
                _phone(gen, locale),
                gen.birth_date(18, 90),
                street,
                city,
                postcode,
                CUSTOMER_LOCALES[locale][0],
                _national_id(gen, locale),
                fake.passport_number(),
                gen.moment(900),
                gen.rng.choice(("bronze", "silver", "gold", "platinum")),
                gen.rng.random() < 0.4,
            )
        )
        addresses.append(f"{street}, {postcode} {city}")
    return ShopTable("customers", _CUSTOMER_COLUMNS, rows), addresses


def _customer_profiles(gen: _ShopFaker, count: int, customers: int) -> ShopTable:
    interests = ("cooking", "cycling", "gaming", "gardening", "photography", "travel", "music")
    rows = []
    for index in range(1, count + 1):
        preferences = {
            "language": gen.rng.choice(("en", "de", "fr", "es", "it", "nl")),
            "newsletter": gen.rng.random() < 0.5,
            "theme": gen.rng.choice(("light", "dark")),
            "categories": gen.rng.sample(interests, 2),
        }
        thumbnail = b"\x89PNG\r\n\x1a\n" + gen.rng.randbytes(gen.rng.randint(64, 512))
        # A handful of ~200 KB values; the rest short.
        repeats = HUGE_TEXT_CHARS // 20 if index % 50 == 1 else 2
        bio = " ".join(gen.rng.choice(_PLAIN_LINES) for _ in range(repeats))[:HUGE_TEXT_CHARS]
        rows.append(
            (
                1 + (index - 1) % customers,
                preferences,
                gen.rng.sample(interests, gen.rng.randint(0, 3)),
                thumbnail,
                None,
                bio,
            )
        )
    return ShopTable(
        "customer_profiles",
        [
            ("customer_id", "int"),
            ("preferences", "json"),
            ("interests", "text_array"),
            ("thumbnail", "binary"),
            ("legacy_fax", "text"),
            ("bio", "huge_text"),
        ],
        rows,
    )


def _employees(gen: _ShopFaker, count: int) -> ShopTable:
    rows = []
    iban_locales = ("en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL")
    for index in range(1, count + 1):
        fake = gen.us
        first, last = fake.first_name(), fake.last_name()
        service_user = index % 10 == 0
        rows.append(
            (
                index,
                f"{first} {last}",
                f"{first}.{last}@warden-shop.example".lower(),
                fake.numerify(
                    gen.rng.choice(("+1 (###) ###-####", "###-###-####", "###.###.####"))
                ),
                gen.fakers[gen.rng.choice(iban_locales)].iban(),
                gen.digits(gen.rng.randint(8, 12)),
                fake.aba(),
                Decimal(gen.rng.randint(3_500_000, 18_000_000)) / 100,
                date(2010, 1, 1) + timedelta(days=gen.rng.randrange(5800)),
                gen.birth_date(20, 66),
                None if index <= 5 else gen.rng.randint(1, 5),
                _api_key(gen) if service_user else None,
                _bcrypt_like(gen),
            )
        )
    return ShopTable(
        "employees",
        [
            ("id", "pk"),
            ("full_name", "text"),
            ("work_email", "text"),
            ("mobile", "text"),
            ("iban", "text"),
            ("bank_account_number", "text"),
            ("routing_number", "text"),
            ("salary", "money"),
            ("hire_date", "date"),
            ("date_of_birth", "date"),
            ("manager_id", "int"),
            ("api_key", "text"),
            ("password_hash", "text"),
        ],
        rows,
    )


def _orders(
    gen: _ShopFaker, count: int, addresses: Sequence[str], skus: Sequence[str]
) -> ShopTable:
    rows = []
    for index in range(1, count + 1):
        customer = gen.rng.randrange(len(addresses))
        rows.append(
            (
                index,
                customer + 1,
                _order_number(gen),
                gen.rng.choice(skus),
                gen.rng.randint(1, 5),
                Decimal(gen.rng.randint(500, 250_000)) / 100,
                gen.rng.choice(("USD", "EUR", "GBP")),
                gen.rng.choice(("placed", "paid", "shipped", "delivered", "returned", "cancelled")),
                addresses[customer],
                gen.moment(400),
            )
        )
    return ShopTable(
        "orders",
        [
            ("id", "pk"),
            ("customer_id", "int"),
            ("order_number", "text"),
            ("sku", "text"),
            ("quantity", "int"),
            ("total_amount", "money"),
            ("currency", "text"),
            ("status", "text"),
            ("shipping_address", "text"),
            ("placed_at", "timestamp"),
        ],
        rows,
    )


def _payments(gen: _ShopFaker, count: int, orders: ShopTable) -> ShopTable:
    rows = []
    for index in range(1, count + 1):
        order = orders.rows[(index - 1) % len(orders.rows)]
        rows.append(
            (
                index,
                order[0],
                _card_number(gen),
                f"{gen.rng.randint(1, 12):02d}/{gen.rng.randint(27, 33)}",
                gen.us.name().upper() if gen.rng.random() < 0.3 else gen.us.name(),
                order[5],
                str(uuid.UUID(int=gen.rng.getrandbits(128), version=4)),
                order[9] + timedelta(minutes=gen.rng.randint(1, 90)),
            )
        )
    return ShopTable(
        "payments",
        [
            ("id", "pk"),
            ("order_id", "int"),
            ("card_number", "text"),
            ("card_expiry", "text"),
            ("cardholder_name", "text"),
            ("amount", "money"),
            ("processor_reference", "text"),
            ("paid_at", "timestamp"),
        ],
        rows,
    )


def _support_tickets(gen: _ShopFaker, count: int, customers: int) -> ShopTable:
    rows = [
        (
            index,
            gen.rng.randint(1, customers),
            gen.rng.choice(_SUBJECTS),
            _ticket_body(gen),
            gen.moment(300),
            gen.rng.choice(("low", "normal", "high", "urgent")),
        )
        for index in range(1, count + 1)
    ]
    return ShopTable(
        "support_tickets",
        [
            ("id", "pk"),
            ("customer_id", "int"),
            ("subject", "text"),
            ("body", "text"),
            ("created_at", "timestamp"),
            ("priority", "text"),
        ],
        rows,
    )


def _access_log(gen: _ShopFaker, count: int) -> ShopTable:
    paths = (
        "/",
        "/cart",
        "/checkout",
        "/account",
        "/api/v1/orders",
        "/search?q=kettle",
        "/products/{}",
        "/orders/{}/invoice",
    )
    agents = [gen.us.user_agent() for _ in range(40)]
    rows = []
    for index in range(1, count + 1):
        client_ip = gen.us.ipv6() if gen.rng.random() < 0.25 else gen.us.ipv4_public()
        rows.append(
            (
                index,
                gen.moment(30),
                gen.rng.choice(agents),
                client_ip,
                gen.rng.choice(paths).format(gen.rng.randint(1, 3000)),
                gen.rng.choice((200, 200, 200, 201, 204, 301, 304, 400, 403, 404, 500)),
                _jwt(gen, gen.rng.randint(1, 2000)),
            )
        )
    return ShopTable(
        "access_log",
        [
            ("id", "pk"),
            ("occurred_at", "timestamp"),
            ("user_agent", "text"),
            ("client_ip", "text"),
            ("path", "text"),
            ("status_code", "int"),
            ("session_token", "text"),
        ],
        rows,
    )


def shop_tables(*, seed: int = 7, scale: float = 1.0) -> list[ShopTable]:
    """Every table of the shop with its rows, in creation order. Deterministic per seed."""
    gen = _ShopFaker(seed)
    customers, addresses = _customers(gen, _count("customers", scale))
    products = _products(gen, _count("products", scale))
    orders = _orders(gen, _count("orders", scale), addresses, [row[1] for row in products.rows])
    return [
        *_lookup_tables(),
        products,
        _warehouses(gen, _count("warehouses", scale)),
        customers,
        _customer_profiles(gen, _count("customer_profiles", scale), len(customers.rows)),
        _employees(gen, _count("employees", scale)),
        orders,
        _payments(gen, _count("payments", scale), orders),
        _support_tickets(gen, _count("support_tickets", scale), len(customers.rows)),
        _access_log(gen, _count("access_log", scale)),
    ]


def _column_type(engine: str, table: str, column: str, kind: str) -> str:
    if engine == "mysql" and f"{table}.{column}" in _LONG_TEXT_COLUMNS:
        return "TEXT"
    return ENGINE_TYPES[engine][kind]


def _quote(engine: str, name: str) -> str:
    return f"`{name}`" if engine == "mysql" else f'"{name}"'


def _create_table_sql(engine: str, table: ShopTable, qualified_name: str) -> str:
    columns = ", ".join(
        f"{_quote(engine, name)} {_column_type(engine, table.name, name, kind)}"
        for name, kind in table.columns
    )
    return f"CREATE TABLE {qualified_name} ({columns})"


def _plain_row(row: tuple[Any, ...], kinds: Sequence[str], *, engine: str) -> tuple[Any, ...]:
    """Values SQLite and PyMySQL can bind: JSON and arrays as text, dates as ISO text."""
    values: list[Any] = []
    for value, kind in zip(row, kinds, strict=True):
        if value is None:
            values.append(None)
        elif kind in ("json", "text_array"):
            values.append(json.dumps(value))
        elif engine == "sqlite" and kind in ("date", "timestamp"):
            values.append(value.isoformat(sep=" ") if kind == "timestamp" else value.isoformat())
        elif engine == "sqlite" and kind == "money":
            values.append(str(value))
        elif kind == "bool":
            values.append(int(value))
        else:
            values.append(value)
    return tuple(values)


# --- SQLite -------------------------------------------------------------------------------

# Latin-1 encoded names (invalid UTF-8) stored as TEXT, as legacy imports leave them.
_LATIN1_NAMES = ("José Müller", "Zoë Ørsted", "François Lefèvre", "Renée Dubois", "Jürgen Weiß")


def _sqlite_legacy_contacts(connection: sqlite3.Connection, gen: random.Random) -> int:
    connection.execute(
        'CREATE TABLE "legacy_contacts" (id INTEGER PRIMARY KEY, name TEXT, city TEXT)'
    )
    cities = ("München", "Orléans", "Málaga", "Göteborg", "Zürich")
    rows = 0
    for index in range(1, 51):
        name = gen.choice(_LATIN1_NAMES)
        city = gen.choice(cities)
        if index % 5 == 0:
            connection.execute(
                "INSERT INTO legacy_contacts VALUES (?, CAST(? AS TEXT), CAST(? AS TEXT))",
                (index, name.encode("latin-1"), city.encode("latin-1")),
            )
        else:
            connection.execute("INSERT INTO legacy_contacts VALUES (?, ?, ?)", (index, name, city))
        rows += 1
    return rows


def shop_sqlite_create(path: str | Path, *, seed: int = 7, scale: float = 1.0) -> dict[str, int]:
    """Create (or recreate) the shop tables in a SQLite file; returns rows per table."""
    tables = shop_tables(seed=seed, scale=scale)
    counts: dict[str, int] = {}
    connection = sqlite3.connect(str(path))
    try:
        with connection:
            for table in tables:
                connection.execute(f'DROP TABLE IF EXISTS "{table.name}"')
                connection.execute(_create_table_sql("sqlite", table, f'"{table.name}"'))
                kinds = [kind for _, kind in table.columns]
                marks = ", ".join("?" for _ in kinds)
                connection.executemany(
                    f'INSERT INTO "{table.name}" VALUES ({marks})',
                    (_plain_row(row, kinds, engine="sqlite") for row in table.rows),
                )
                counts[table.name] = len(table.rows)
            connection.execute('DROP TABLE IF EXISTS "legacy_contacts"')
            counts["legacy_contacts"] = _sqlite_legacy_contacts(connection, random.Random(seed))
    finally:
        connection.close()
    return counts


# --- PostgreSQL ---------------------------------------------------------------------------

_PG_COPY_TYPES = {
    "pk": "int4",
    "int": "int4",
    "text": "text",
    "date": "date",
    "timestamp": "timestamp",
    "bool": "bool",
    "money": "numeric",
    "json": "jsonb",
    "text_array": "text[]",
    "binary": "bytea",
    "huge_text": "text",
}


def shop_postgresql_create(
    conninfo: str, *, schema: str = "public", seed: int = 7, scale: float = 1.0
) -> dict[str, int]:
    """Create (or recreate) the shop tables in ``schema``, filled with COPY."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    tables = shop_tables(seed=seed, scale=scale)
    counts: dict[str, int] = {}
    with psycopg.connect(conninfo) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for table in tables:
            relation = sql.Identifier(schema, table.name)
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(relation))
            connection.execute(
                _create_table_sql("postgresql", table, relation.as_string(connection))
            )
            kinds = [kind for _, kind in table.columns]
            json_positions = [index for index, kind in enumerate(kinds) if kind == "json"]
            copy_sql = sql.SQL("COPY {} FROM STDIN").format(relation)
            with connection.cursor().copy(copy_sql) as copy:
                copy.set_types([_PG_COPY_TYPES[kind] for kind in kinds])
                for row in table.rows:
                    if json_positions:
                        row = tuple(
                            Jsonb(value) if index in json_positions else value
                            for index, value in enumerate(row)
                        )
                    copy.write_row(row)
            counts[table.name] = len(table.rows)
        connection.execute("ANALYZE")
    return counts


def shop_drop_postgresql_schema(conninfo: str, schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


# --- MySQL / MariaDB ----------------------------------------------------------------------


def _mysql_connect(
    host: str, port: int, user: str, password: str, database: str | None = None
) -> Any:
    import pymysql

    return pymysql.connect(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        charset="utf8mb4",
        autocommit=False,
    )


def shop_mysql_create(
    *,
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str = "",
    database: str,
    seed: int = 7,
    scale: float = 1.0,
) -> dict[str, int]:
    """Create the database if needed and (re)create the shop tables with executemany."""
    tables = shop_tables(seed=seed, scale=scale)
    counts: dict[str, int] = {}
    connection = _mysql_connect(host, port, user, password)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4")
            cursor.execute(f"USE `{database}`")
            for table in tables:
                cursor.execute(f"DROP TABLE IF EXISTS `{table.name}`")
                cursor.execute(_create_table_sql("mysql", table, f"`{table.name}`"))
                kinds = [kind for _, kind in table.columns]
                marks = ", ".join("%s" for _ in kinds)
                for batch in _batches(table.rows, 500):
                    cursor.executemany(
                        f"INSERT INTO `{table.name}` VALUES ({marks})",
                        [_plain_row(row, kinds, engine="mysql") for row in batch],
                    )
                counts[table.name] = len(table.rows)
        connection.commit()
    finally:
        connection.close()
    return counts


def _batches(rows: Sequence[tuple[Any, ...]], size: int) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def shop_drop_mysql_database(
    *,
    host: str = "127.0.0.1",
    port: int = 3306,
    user: str = "root",
    password: str = "",
    database: str,
) -> None:
    connection = _mysql_connect(host, port, user, password)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        connection.close()
