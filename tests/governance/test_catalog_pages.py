"""Keyset pages of the catalog: every column once, in browsing order, from an indexed key."""

from __future__ import annotations

import itertools
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance import selectors, views
from governance.connectors import ColumnInfo, TableInfo
from governance.models import Column
from governance.selectors import catalog_columns
from governance.services.catalog import datasource_update
from governance.services.catalog_sync import catalog_reconcile
from tests.factories import ColumnFactory, DataSourceFactory, TableFactory

pytestmark = pytest.mark.django_db
ROW = re.compile(r'href="/catalog/columns/(\d+)/"')
LINK = re.compile(r'href="\?([^"]*)" rel="(prev|next)"')


@pytest.fixture
def two_sources():
    """Columns created out of browsing order: 'shop2' before 'shop', tables z before a."""
    shop2, shop = DataSourceFactory(name="shop2"), DataSourceFactory(name="shop")
    for datasource in (shop2, shop):
        for table_name in ("zeta", "alpha"):
            table = TableFactory(datasource=datasource, schema_name="public", name=table_name)
            for ordinal in (3, 1, 2):
                ColumnFactory(table=table, name=f"c{ordinal}", ordinal=ordinal)
    return shop, shop2


def _browsing_order() -> list[int]:
    columns = Column.objects.select_related("table__datasource")
    return [
        column.pk
        for column in sorted(
            columns,
            key=lambda c: (c.table.datasource.name, c.table.schema_name, c.table.name, c.ordinal),
        )
    ]


def _flat(pages: list[list[int]]) -> list[int]:
    return list(itertools.chain.from_iterable(pages))


def _walk(client, query: str, direction: str) -> tuple[list[list[int]], list[str]]:
    pages, queries = [], []
    while query is not None:
        html = client.get(f"/catalog/?{query}").content.decode()
        pages.append([int(pk) for pk in ROW.findall(html)])
        queries.append(query)
        links = {rel: href.replace("&amp;", "&") for href, rel in LINK.findall(html)}
        query = links.get(direction)
    return pages, queries


def test_next_links_visit_every_column_once_in_browsing_order(
    admin, client, monkeypatch, two_sources
):
    client.force_login(admin)
    monkeypatch.setattr(views, "CATALOG_PAGE_SIZE", 5)
    forwards, _ = _walk(client, "", "next")
    backwards, _ = _walk(client, "last=1", "prev")
    numbered = [
        [int(pk) for pk in ROW.findall(client.get(f"/catalog/?page={n}").content.decode())]
        for n in (1, 2, 3)
    ]

    assert [len(page) for page in forwards] == [5, 5, 2]
    assert _flat(forwards) == _browsing_order()  # shop before shop2, alpha before zeta
    # "last »" then "← previous" walks back from a full last page to the first column
    assert [len(page) for page in backwards] == [5, 5, 2]
    assert _flat(backwards[::-1]) == _browsing_order()
    assert numbered == forwards  # old ?page=N links still open the same pages


def test_filters_survive_the_page_links(admin, client, monkeypatch, two_sources):
    shop, _ = two_sources
    client.force_login(admin)
    monkeypatch.setattr(views, "CATALOG_PAGE_SIZE", 2)
    pages, queries = _walk(client, f"datasource={shop.pk}&q=c", "next")
    ids = _flat(pages)
    assert len(ids) == 6 and all(f"datasource={shop.pk}" in query for query in queries)
    assert set(ids) == set(
        Column.objects.filter(table__datasource=shop).values_list("pk", flat=True)
    )
    assert "6 columns" in client.get(f"/catalog/?datasource={shop.pk}").content.decode()


def test_an_unknown_cursor_opens_the_first_page(admin, client, two_sources):
    client.force_login(admin)
    html = client.get("/catalog/?after=999999").content.decode()
    assert [int(pk) for pk in ROW.findall(html)] == _browsing_order()[:12]


def test_the_sort_key_follows_a_rescan_and_a_rename(admin):
    datasource = DataSourceFactory(name="crm")
    found = [
        TableInfo(
            "public",
            "people",
            "table",
            3,
            (ColumnInfo("name", "text", True, 1), ColumnInfo("email", "text", True, 2)),
        )
    ]
    catalog_reconcile(datasource=datasource, found_tables=found, scan_run=None, now=timezone.now())
    moved = [
        TableInfo(
            "public",
            "people",
            "table",
            3,
            (ColumnInfo("email", "text", True, 1), ColumnInfo("name", "text", True, 2)),
        )
    ]
    catalog_reconcile(datasource=datasource, found_tables=moved, scan_run=None, now=timezone.now())
    keys = dict(Column.objects.values_list("name", "sort_key"))
    assert keys["email"] == "crm\x01public\x01people\x010000000001\x01email"
    assert keys["email"] < keys["name"]

    datasource_update(actor=admin, datasource=datasource, name="crm-eu")
    keys = dict(Column.objects.values_list("name", "sort_key"))
    assert keys["email"] == "crm-eu\x01public\x01people\x010000000001\x01email"
    assert keys["name"] == "crm-eu\x01public\x01people\x010000000002\x01name"


def _wide_table(name: str, count: int) -> None:
    """`count` columns c00000… in one table, keyed as the catalog sync keys them."""
    now = timezone.now()
    table = TableFactory(datasource=DataSourceFactory(name=name), name=name)
    Column.objects.bulk_create(
        Column(
            table=table,
            name=f"c{index:05d}",
            data_type="text",
            ordinal=index,
            first_seen_at=now,
            last_seen_at=now,
            sort_key=f"{name}\x01public\x01{name}\x01{index:010d}\x01c{index:05d}",
        )
        for index in range(count)
    )
    with connection.cursor() as cursor:
        # What autovacuum does to a settled catalog: move GIN's pending entries into the
        # index proper (the planner prices a long pending list as a scan of it).
        cursor.execute("SELECT gin_clean_pending_list('column_name_trgm_idx')")
        cursor.execute("ANALYZE governance_column")
        cursor.execute("ANALYZE governance_table")


def test_a_deep_catalog_page_is_an_index_range_scan_not_a_sort(admin):
    _wide_table("wide", 20_000)
    middle = Column.objects.get(name="c10000")
    sql, params = (
        catalog_columns().filter(sort_key__gt=middle.sort_key)[:51].query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "column_sort_key_idx" in plan and "Sort" not in plan, plan


def test_the_columns_api_next_links_are_keyset_pages_over_every_column(admin, client, two_sources):
    client.force_login(admin)
    seen, url = [], "/api/v1/columns/?limit=5"
    while url:
        page = client.get(url).json()
        assert page["count"] == 12
        seen += [column["id"] for column in page["results"]]
        url = page["next"]
        assert url is None or ("after=" in url and "offset=" not in url)
    old_offset = client.get("/api/v1/columns/", {"limit": 5, "offset": 5}).json()

    assert seen == _browsing_order()
    assert [column["id"] for column in old_offset["results"]] == seen[5:10]  # offsets still work


def test_the_columns_api_refuses_an_unknown_cursor_by_name(admin, client, two_sources):
    client.force_login(admin)
    response = client.get("/api/v1/columns/", {"after": 999999})
    assert response.status_code == 400
    assert response.json()["fields"] == {"after": ["No column has this id; follow the next link."]}
    assert client.get("/api/v1/columns/", {"after": "x"}).json()["fields"] == {
        "after": ["A whole number is required."]
    }


def test_search_finds_columns_by_their_table_or_their_own_name(admin, client, two_sources):
    client.force_login(admin)
    by_table = client.get("/catalog/", {"q": "ZET"}).content.decode()
    by_column = client.get("/catalog/", {"q": "c3"}).content.decode()
    zeta = Column.objects.filter(table__name="zeta").values_list("pk", flat=True)
    named_c3 = Column.objects.filter(name="c3").values_list("pk", flat=True)
    assert sorted(int(pk) for pk in ROW.findall(by_table)) == sorted(zeta) and len(zeta) == 6
    assert sorted(int(pk) for pk in ROW.findall(by_column)) == sorted(named_c3)


def _plan_of(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_catalog_search_reads_the_name_indexes_not_every_column(admin):
    _wide_table("wide", 20_000)
    archive = TableFactory(datasource=DataSourceFactory(name="crm"), name="c01234_archive")
    ColumnFactory(table=archive, name="id")

    search = catalog_columns(query="C01234")
    with CaptureQueriesContext(connection) as captured:
        search.count()
    plan = _plan_of(captured.captured_queries[-1]["sql"])  # the count reads every match
    matched = set(search.values_list("name", flat=True))

    assert "column_name_trgm_idx" in plan and "Seq Scan on governance_column" not in plan, plan
    assert "BitmapOr" in plan, plan  # the matching table's columns come from table_id's index
    assert matched == {"c01234", "id"}  # by its own name, by its table's


def test_a_search_matching_very_many_tables_finds_the_same_columns(monkeypatch, two_sources):
    listed = sorted(catalog_columns(query="a").values_list("pk", flat=True))
    monkeypatch.setattr(selectors, "TABLE_IDS_LISTED", 1)  # 'alpha' and 'zeta': past the list
    as_subquery = sorted(catalog_columns(query="a").values_list("pk", flat=True))

    assert as_subquery == listed
    assert len(listed) == 12  # every table has an 'a' in its name


def test_a_deep_offset_walks_the_sort_key_index_alone(admin, client):
    _wide_table("wide", 2_000)
    client.force_login(admin)
    expected = list(Column.objects.order_by("sort_key").values_list("pk", flat=True)[1_500:1_550])

    with CaptureQueriesContext(connection) as captured:
        page = client.get("/api/v1/columns/", {"limit": 50, "offset": 1_500}).json()
    # Read before the next request: each request empties the query log it slices.
    walks = [query["sql"] for query in captured.captured_queries if "OFFSET" in query["sql"]]
    past_the_end = client.get("/api/v1/columns/", {"limit": 50, "offset": 2_000}).json()

    assert [column["id"] for column in page["results"]] == expected
    assert page["count"] == 2_000 and "after=" in page["next"] and "offset=1450" in page["previous"]
    assert len(walks) == 1 and "JOIN" not in walks[0], walks  # one narrow walk, no joins
    assert past_the_end["results"] == [] and past_the_end["next"] is None


def test_a_numbered_catalog_page_past_the_end_is_empty(admin, client, two_sources):
    client.force_login(admin)
    html = client.get("/catalog/", {"page": 9}).content.decode()
    assert ROW.findall(html) == [] and "12 columns" in html


def test_catalog_pages_and_the_columns_api_take_a_fixed_number_of_queries(
    admin, client, two_sources, django_assert_max_num_queries
):
    client.force_login(admin)
    # session, user, roles; the page's columns, their tags, the count; filter lists
    for query in ({}, {"q": "zet"}, {"page": 2}, {"q": "c", "page": 2}):
        with django_assert_max_num_queries(10):
            assert client.get("/catalog/", query).status_code == 200
    for query in ({"limit": 5}, {"limit": 5, "offset": 5}, {"q": "zet", "limit": 5}):
        with django_assert_max_num_queries(8):
            assert client.get("/api/v1/columns/", query).status_code == 200


def test_the_column_page_reads_its_tag_picker_in_one_plain_query(
    admin, client, two_sources, django_assert_max_num_queries
):
    column = Column.objects.order_by("pk").first()
    client.force_login(admin)
    # session, user, roles; the column, its tags, its changes, the picker's tags
    with django_assert_max_num_queries(7) as captured:
        html = client.get(f"/catalog/columns/{column.pk}/").content.decode()

    assert not any("DECLARE" in query["sql"] for query in captured.captured_queries)
    assert '<option value="PII.Email">' in html  # the picker still lists the taxonomy
