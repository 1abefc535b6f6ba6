"""The PostgreSQL fixtures the sweep tests share a study through: each test
gets its own empty, writable database on a real server, dropped afterwards.

Skipped unless $NN_GPU_TEST_POSTGRES names a server (CI starts one with
scripts/postgres_for_tests.sh and requires it).
"""

import pytest

# The sweep extra; absent e.g. on the GPU machine. (CI installs it, and its
# NN_GPU_REQUIRE_POSTGRES=1 makes the server-side tests fail rather than skip.)
psycopg = pytest.importorskip("psycopg")
from conftest import _libpq_url, fresh_postgres_database  # noqa: E402


def query(url, statement, *params):
    """Run one statement in its own connection (committed on exit); its rows."""
    with psycopg.connect(_libpq_url(url), connect_timeout=5) as connection:
        cursor = connection.execute(statement, params or None)
        return cursor.fetchall() if cursor.description else None


def user_tables(url):
    rows = query(url, "SELECT table_name FROM information_schema.tables"
                      " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
    return sorted(name for (name,) in rows)


def test_storage_database_is_empty_and_writable(postgres_storage_url):
    assert user_tables(postgres_storage_url) == []
    query(postgres_storage_url, "CREATE TABLE trial (number integer PRIMARY KEY, accuracy real)")
    query(postgres_storage_url, "INSERT INTO trial VALUES (%s, %s)", 7, 0.9625)
    assert query(postgres_storage_url, "SELECT number, accuracy FROM trial") == [
        (7, pytest.approx(0.9625))]
    assert user_tables(postgres_storage_url) == ["trial"]


def test_storage_databases_are_distinct_and_dropped(postgres_url, postgres_storage_url):
    with fresh_postgres_database(postgres_url) as other:
        assert other != postgres_storage_url
        query(postgres_storage_url, "CREATE TABLE only_here (x integer)")
        assert user_tables(postgres_storage_url) == ["only_here"]
        assert user_tables(other) == []
        other_name = other.rsplit("/", 1)[1]
    assert query(postgres_url, "SELECT count(*) FROM pg_database WHERE datname = %s",
                 other_name) == [(0,)], "the database was not dropped on exit"
