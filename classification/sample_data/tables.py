"""The demo shop's tables and rows, built in memory once per seed and scale."""

from __future__ import annotations

import string
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from classification.sample_data.schema import (
    BASE_ROWS,
    CUSTOMER_LOCALES,
    HUGE_TEXT_CHARS,
    ShopTable,
)
from classification.sample_data.values import (
    PLAIN_LINES,
    SUBJECTS,
    ShopFaker,
    api_key,
    bcrypt_like,
    card_number,
    jwt,
    national_id,
    order_number,
    phone,
    ticket_body,
)


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


def _products(gen: ShopFaker, count: int) -> ShopTable:
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


def _warehouses(gen: ShopFaker, count: int) -> ShopTable:
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


def _customers(gen: ShopFaker, count: int) -> tuple[ShopTable, list[str]]:
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
                phone(gen, locale),
                gen.birth_date(18, 90),
                street,
                city,
                postcode,
                CUSTOMER_LOCALES[locale][0],
                national_id(gen, locale),
                fake.passport_number(),
                gen.moment(900),
                gen.rng.choice(("bronze", "silver", "gold", "platinum")),
                gen.rng.random() < 0.4,
            )
        )
        addresses.append(f"{street}, {postcode} {city}")
    return ShopTable("customers", _CUSTOMER_COLUMNS, rows), addresses


def _customer_profiles(gen: ShopFaker, count: int, customers: int) -> ShopTable:
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
        bio = " ".join(gen.rng.choice(PLAIN_LINES) for _ in range(repeats))[:HUGE_TEXT_CHARS]
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


def _employees(gen: ShopFaker, count: int) -> ShopTable:
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
                api_key(gen) if service_user else None,
                bcrypt_like(gen),
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


def _orders(gen: ShopFaker, count: int, addresses: Sequence[str], skus: Sequence[str]) -> ShopTable:
    rows = []
    for index in range(1, count + 1):
        customer = gen.rng.randrange(len(addresses))
        rows.append(
            (
                index,
                customer + 1,
                order_number(gen),
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


def _payments(gen: ShopFaker, count: int, orders: ShopTable) -> ShopTable:
    rows = []
    for index in range(1, count + 1):
        order = orders.rows[(index - 1) % len(orders.rows)]
        rows.append(
            (
                index,
                order[0],
                card_number(gen),
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


def _support_tickets(gen: ShopFaker, count: int, customers: int) -> ShopTable:
    rows = [
        (
            index,
            gen.rng.randint(1, customers),
            gen.rng.choice(SUBJECTS),
            ticket_body(gen),
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


def _access_log(gen: ShopFaker, count: int) -> ShopTable:
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
                jwt(gen, gen.rng.randint(1, 2000)),
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
    gen = ShopFaker(seed)
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
