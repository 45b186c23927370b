"""Shared fixtures: a throwaway PostgreSQL server for the session, a fresh database per test."""

from __future__ import annotations

import pytest

from postgres_server import MISSING, ThrowawayServer, find_bin_dir


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the whole session (skips, naming the Debian package, without the binaries)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(MISSING)
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        pytest.skip('the PostgreSQL store needs psycopg: pip install "failpath[postgres]"')
    server = ThrowawayServer(bin_dir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a new, empty database on the session's server (dropped after the test)."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)
