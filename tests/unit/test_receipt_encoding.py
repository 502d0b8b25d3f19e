"""The receipt encoding's fast path (canonical_values, used by AuditTrail.record) is byte-identical
to the definition in sinks/postgres/receipts.py: json.dumps of dataclasses.asdict, sorted keys,
compact separators, ASCII only. A difference would break every hash chain already written."""

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.postgres.receipts import (
    RECEIPT_FIELDS,
    Receipt,
    canonical_bytes,
    canonical_time,
    canonical_values,
    receipt_hash,
    values_hash,
)


def reference(receipt: Receipt) -> bytes:
    """The implementation every chain so far was written with (before the fast path)."""
    fields: dict[str, Any] = dataclasses.asdict(receipt)
    fields["recorded_at"] = canonical_time(receipt.recorded_at)
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


texts = st.text()  # any code point: non-ASCII, control characters, quotes, lone surrogates
ints = st.integers(min_value=-(2**80), max_value=2**80)  # beyond bigint too
zones = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
receipts = st.builds(
    Receipt,
    seq=ints,
    record_type=texts,
    record_id=texts,
    version=ints,
    change=texts,
    kind=texts,
    entity=texts,
    livemode=st.booleans(),
    amount_minor=ints,
    currency=texts,
    counted=st.none() | st.booleans(),
    status=texts,
    refunded_minor=st.none() | ints,
    source_event_id=texts,
    recorded_at=instants,
    prev_hash=texts,
)


@settings(max_examples=500)
@given(receipts)
def test_fast_encoding_is_byte_identical_to_the_definition(receipt: Receipt) -> None:
    expected = reference(receipt)
    assert canonical_bytes(receipt) == expected
    values = tuple(getattr(receipt, name) for name in RECEIPT_FIELDS)
    assert canonical_values(values) == expected
    assert canonical_values(values, canonical_time(receipt.recorded_at)) == expected
    assert values_hash(values) == receipt_hash(receipt)


class Kind(StrEnum):
    PAYMENT = "payment"


class Big(IntEnum):
    N = 2**40


others = st.one_of(
    st.sampled_from([Kind.PAYMENT, Big.N]),
    st.floats(allow_nan=True),
    st.lists(st.integers() | st.text(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


@settings(max_examples=200)
@given(receipts, st.sampled_from([n for n in RECEIPT_FIELDS if n != "recorded_at"]), others)
def test_values_of_other_types_encode_as_json_dumps_does(receipt: Receipt, name: str, value: Any) -> None:
    odd = dataclasses.replace(receipt, **{name: value})
    assert canonical_bytes(odd) == reference(odd)
