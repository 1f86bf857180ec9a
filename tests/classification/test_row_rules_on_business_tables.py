"""Row rules meet ordinary business tables (issue 17, review of the row rules): an order
status, payment method or category beside a postcode is no town, a car's colour beside its
owner's full name is no surname, a team beside its mailbox (sales-team@) is no person, and
store numbers handed out in order beside a street are no postcodes. Each case has its
legitimate twin, which keeps its tag."""

from __future__ import annotations

import pytest

from classification.classifier import classify_columns
from classification.detectors.base import ColumnSample, TagSuggestion

THRESHOLD = 0.7
STREETS = ["12 High Street", "7 Station Road", "41 Church Lane", "3 Mill Road", "22 Park Avenue"]
STREETS += [
    "80 Victoria Road",
    "15 Green Lane",
    "1 Kings Road",
    "9 Queen Street",
    "5 Bridge Street",
]
POSTCODES = ["LS1 4AP", "YO1 7HH", "BA1 1LZ", "DE1 2AA", "EX1 1HS", "HU1 2AA", "TR1 2HE"]
POSTCODES += ["BA5 2RB", "CB7 4DL", "HG4 1DY"]
TOWNS = ["Leeds", "York", "Bath", "Derby", "Exeter", "Hull", "Truro", "Wells", "Ely", "Ripon"]
# Hamlets no gazetteer lists, repeated where their postcodes share an area (LS, BA)
HAMLETS = ["Oakholme", "Thornbeck", "Ashby Parva", "Dunmere", "Kelwick", "Oakholme", "Fenby"]
HAMLETS += ["Ashby Parva", "Marlow Bottom", "Kestle"]
HAMLET_CODES = ["LS1 4AP", "YO1 7HH", "BA1 1LZ", "DE1 2AA", "EX1 1HS", "LS6 2AA", "TR1 2HE"]
HAMLET_CODES += ["BA5 2RB", "CB7 4DL", "HG4 1DY"]
OWNERS = ["Alice Johnson", "Robert Smith", "Maria Garcia", "James Brown", "Linda Davis"]
OWNERS += ["Michael Miller", "Sarah Wilson", "David Moore", "Karen Taylor", "Thomas Anderson"]


def sample(name: str, values: list[object]) -> ColumnSample:
    return ColumnSample(name, "text", values, "t9")


def tags(suggestions: list[TagSuggestion]) -> dict[str, TagSuggestion]:
    return {s.tag: s for s in suggestions if s.confidence >= THRESHOLD}


@pytest.mark.parametrize(
    "values",
    [
        ["Delivered", "Shipped", "Pending", "Returned", "Cancelled"] * 2,
        [
            "Visa",
            "Mastercard",
            "PayPal",
            "Klarna",
            "Maestro",
            "Visa",
            "Amex",
            "PayPal",
            "Klarna",
            "Mastercard",
        ],
        [
            "Garden",
            "Kitchen",
            "Toys",
            "Books",
            "Outdoor",
            "Bathroom",
            "Lighting",
            "Garden",
            "Kitchen",
            "Books",
        ],
    ],
    ids=["status", "payment-method", "category"],
)
def test_values_repeated_across_postal_areas_beside_a_postcode_are_not_towns(
    values: list[object],
) -> None:
    found = classify_columns([sample("c0", STREETS), sample("c1", POSTCODES), sample("c2", values)])
    assert "PII.PostalCode" in tags(found[1])
    assert "PII.Location" not in tags(found[2])


def test_hamlets_repeated_within_their_postal_area_are_still_towns() -> None:
    found = classify_columns(
        [sample("c0", STREETS), sample("c1", HAMLET_CODES), sample("c2", HAMLETS)]
    )
    assert "postcode" in tags(found[2])["PII.Location"].evidence["context"]["rule"]


def test_a_colour_beside_its_owners_full_name_is_not_a_surname() -> None:
    colours = ["White", "Black", "Silver", "Grey", "Blue", "Red", "Green", "Brown", "White"]
    colours.append("Black")
    found = classify_columns([sample("c0", OWNERS), sample("c1", colours)])
    assert "PII.PersonName" in tags(found[0])
    assert "PII.PersonName" not in tags(found[1])


def test_the_surname_a_full_name_holds_beside_it_is_still_a_name() -> None:
    surnames = [owner.split()[1] for owner in OWNERS]
    found = classify_columns([sample("c0", OWNERS), sample("c1", surnames)])
    assert "PII.PersonName" in tags(found[1])


def test_a_team_beside_its_shared_suffix_mailbox_is_not_a_person() -> None:
    teams = ["Sales", "Support", "Billing", "Marketing", "Finance", "Legal", "Security"]
    teams += ["Payroll", "Recruiting", "Procurement"]
    mails = ["sales-team@acme.com", "support-desk@acme.com", "billing.ops@acme.com"]
    mails += ["marketing-uk@acme.com", "finance.ap@acme.com", "legal-team@acme.com"]
    mails += ["security-ops@acme.com", "payroll.uk@acme.com", "recruiting-eu@acme.com"]
    mails.append("procurement-hq@acme.com")
    found = classify_columns([sample("c0", teams), sample("c1", mails)])
    assert "PII.Email" in tags(found[1])
    assert "PII.PersonName" not in tags(found[0])


def test_store_numbers_handed_out_in_order_beside_a_street_are_not_postcodes() -> None:
    stores = ["004512", "004513", "004517", "004520", "004531", "004544", "004552", "004560"]
    stores += ["004561", "004577"]
    found = classify_columns([sample("c0", STREETS), sample("c1", stores), sample("c2", TOWNS)])
    assert "PII.Address" in tags(found[0])
    assert "PII.PostalCode" not in tags(found[1])


def test_six_digit_postcodes_spread_over_areas_beside_a_street_are_still_postcodes() -> None:
    codes = ["050000", "010000", "125009", "190000", "630099", "344002", "620014", "443100"]
    codes += ["660049", "420111"]
    found = classify_columns([sample("c0", STREETS), sample("c1", codes), sample("c2", TOWNS)])
    assert "PII.PostalCode" in tags(found[1])


@pytest.mark.parametrize(
    "codes",
    [
        [
            "A-1203",
            "B-0412",
            "C-1188",
            "A-0931",
            "D-2201",
            "B-1777",
            "C-0045",
            "A-0630",
            "D-1412",
            "B-0098",
        ],
        [
            "KX-4821",
            "LM-9932",
            "PQ-1180",
            "ZR-5531",
            "TT-7719",
            "AB-1029",
            "CD-8841",
            "EF-3321",
            "GH-6654",
            "IJ-2290",
        ],
    ],
    ids=["warehouse-bin", "sku"],
)
def test_bins_and_skus_between_a_street_and_its_town_are_not_postcodes(codes: list[object]) -> None:
    found = classify_columns([sample("c0", STREETS), sample("c1", codes), sample("c2", TOWNS)])
    assert "PII.Address" in tags(found[0]) and "PII.Location" in tags(found[2])
    assert "PII.PostalCode" not in tags(found[1])


OFFICE_TOWNS = ["Leeds", "York", "Bath", "Paris", "Berlin"]
# First names that are towns as well, and names that are not: a sample of people
PEOPLE = ["Florence", "Paris", "Austin", "Alice", "Robert", "Sydney", "Maria", "Victoria"]
PEOPLE += ["James", "Linda", "Chelsea", "Thomas", "Emma", "Noah", "Karen", "David"]


def test_an_employees_office_town_is_not_a_first_name() -> None:
    """Paris, York and Bath are in the name index; five of them, each again and again,
    are where people work."""
    towns = [town for town, staff in zip(OFFICE_TOWNS, [4, 8, 2, 6, 10], strict=True)
             for _ in range(staff)]  # fmt: skip
    titles = ["Analyst", "Designer", "Recruiter", "Accountant", "Engineer", "Consultant"] * 5
    found = classify_columns([sample("c0", OWNERS * 3), sample("c1", titles), sample("c2", towns)])
    assert "PII.PersonName" in tags(found[0])
    assert "PII.PersonName" not in tags(found[2]) and "PII.Location" in tags(found[2])
    assert tags(found[2])["PII.Location"].evidence["repeated"] is True


@pytest.mark.parametrize("other", ["Remote", "Home office", "HQ"])
def test_an_office_column_with_one_value_that_is_no_town_is_still_towns(other: str) -> None:
    towns = [town for town, staff in zip(OFFICE_TOWNS, [4, 8, 2, 6, 10], strict=True)
             for _ in range(staff)] + [other] * 5  # fmt: skip
    (found,) = classify_columns([sample("c2", towns)])
    assert "PII.PersonName" not in tags(found) and "PII.Location" in tags(found)


def test_towns_beside_a_value_that_is_a_name_are_read_as_before() -> None:
    """The one value that is no town is a common name (Beatriz): the column may be people, so the
    repeated-towns rule stays out and the column is judged as it was without it."""
    towns = [town for town, staff in zip(OFFICE_TOWNS, [4, 8, 2, 6, 10], strict=True)
             for _ in range(staff)]  # fmt: skip
    (with_name,) = classify_columns([sample("c2", [*towns, *["Beatriz"] * 5])])
    assert (
        tags(with_name).get("PII.Location") is None
        or not tags(with_name)["PII.Location"].evidence["repeated"]
    )


@pytest.mark.parametrize("repeated", [1, 2], ids=["distinct", "each-twice"])
def test_first_names_some_of_them_towns_are_still_names(repeated: int) -> None:
    found = classify_columns([sample("c1", PEOPLE * repeated)])
    assert "PII.PersonName" in tags(found[0])


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("c2", ["Austin", "Lincoln"] * 10),  # two values say nothing of towns
        ("c2", ["Austin", "Savannah", "Dallas", "Chelsea"] * 3),  # a family's four children
        ("first_name", ["Austin", "Savannah", "Dallas", "Chelsea"] * 6),  # the header says
    ],
)
def test_few_names_that_are_towns_are_still_names(name: str, values: list[object]) -> None:
    assert "PII.PersonName" in tags(classify_columns([sample(name, values)])[0])
