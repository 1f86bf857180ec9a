"""The demo shop's tables, locales and the tags a scan must find (what scan tests judge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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


@dataclass
class ShopTable:
    name: str
    columns: list[tuple[str, str]]  # (name, kind)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
