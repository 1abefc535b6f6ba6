"""The PostgreSQL fixtures the sweep tests share a study through: each test
gets its own empty, writable database on a real server, dropped afterwards.

Skipped unless $NN_GPU_TEST_POSTGRES names a server (CI starts one with
scripts/postgres_for_tests.sh and requires it).
"""

import psycopg2
import pytest

from conftest import _libpq_url, fresh_postgres_database


def user_tables(url):
    with psycopg2.connect(_libpq_url(url), connect_timeout=5) as connection:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            )
            tables = sorted(name for (name,) in cursor.fetchall())
    connection.close()
    return tables


def test_storage_database_is_empty_and_writable(postgres_storage_url):
    assert user_tables(postgres_storage_url) == []
    connection = psycopg2.connect(_libpq_url(postgres_storage_url), connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE trial (number integer PRIMARY KEY, accuracy real)")
            cursor.execute("INSERT INTO trial VALUES (%s, %s)", (7, 0.9625))
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT number, accuracy FROM trial")
            assert cursor.fetchall() == [(7, pytest.approx(0.9625))]
    finally:
        connection.close()
    assert user_tables(postgres_storage_url) == ["trial"]


def test_storage_databases_are_distinct(postgres_url, postgres_storage_url):
    with fresh_postgres_database(postgres_url) as other:
        assert other != postgres_storage_url
        connection = psycopg2.connect(_libpq_url(postgres_storage_url), connect_timeout=5)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("CREATE TABLE only_here (x integer)")
        finally:
            connection.close()
        assert user_tables(postgres_storage_url) == ["only_here"]
        assert user_tables(other) == []
        other_name = other.rsplit("/", 1)[1]

    connection = psycopg2.connect(_libpq_url(postgres_url), connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (other_name,))
            assert cursor.fetchone() == (0,), "the database was not dropped on exit"
    finally:
        connection.close()
