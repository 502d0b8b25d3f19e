"""Migration 0072 re-spells the hash checks of the audit tables (64 lowercase hex digits) so the
server checks them cheaply. Property: each constraint, as the catalog holds it, accepts exactly the
strings the original pattern '^[0-9a-f]{64}$' accepted."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinks.postgres.migrations import apply_migrations
from tests.conftest import create_database
from tests.services import ServiceEndpoints

pytestmark = [pytest.mark.integration]

CONSTRAINTS = {  # constraint -> the column it checks
    "audit_receipts_prev_hash_check": "prev_hash",
    "audit_receipts_hash_check": "hash",
    "audit_chain_head_last_hash_check": "last_hash",
    "audit_anchors_root_check": "root",
}
# Near misses: right length with one odd character, one too short or long, other alphabets.
hex_like = st.text(alphabet="0123456789abcdefABCDEFgz-\n é\u0660", min_size=62, max_size=66)
candidates = st.lists(hex_like | st.text(max_size=70), min_size=1, max_size=20)


@pytest.fixture(scope="module")
def checks(services: ServiceEndpoints) -> Iterator[tuple[str, dict[str, str]]]:
    url = create_database(services.postgres_url, f"revstream_hashrule_{uuid.uuid4().hex[:10]}")
    apply_migrations(url)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = ANY(%s)",
            (list(CONSTRAINTS),),
        ).fetchall()
    definitions = {name: definition.removeprefix("CHECK ") for name, definition in rows}
    assert set(definitions) == set(CONSTRAINTS)
    yield url, definitions


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=candidates)
def test_the_checks_accept_what_the_original_pattern_accepted(
    checks: tuple[str, dict[str, str]], values: list[str]
) -> None:
    url, definitions = checks
    values = [v.replace("\x00", "") for v in values]  # text cannot hold NUL
    with psycopg.connect(url) as conn:
        for name, definition in definitions.items():
            column = CONSTRAINTS[name]
            query = (
                f"SELECT v, v ~ '^[0-9a-f]{{64}}$', {definition} "
                f"FROM unnest(%s::text[]) AS v, LATERAL (SELECT v AS {column}) AS c"
            )
            for value, original, now in conn.execute(query, (values,)).fetchall():
                assert original == now, (name, value)


def test_a_real_hash_passes_and_an_uppercase_one_does_not(checks: tuple[str, dict[str, str]]) -> None:
    url, definitions = checks
    with psycopg.connect(url) as conn:
        for name, definition in definitions.items():
            column = CONSTRAINTS[name]
            good, bad = conn.execute(
                f"SELECT (SELECT {definition} FROM (SELECT %s::text AS {column}) AS a), "
                f"(SELECT {definition} FROM (SELECT %s::text AS {column}) AS b)",
                ("0123456789abcdef" * 4, "0123456789ABCDEF" * 4),
            ).fetchone() or (None, None)
            assert (good, bad) == (True, False), name
