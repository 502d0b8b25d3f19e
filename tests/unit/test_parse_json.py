"""The fast paths of the processor's (de)serialization give exactly what the plain ones gave:
parse_json == json.loads (value or error), to_bytes == model_dump_json().encode()."""

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.revenue.common import parse_json
from processors.revenue.derive import derive
from schemas.envelope import RawEnvelope
from tests.stripe_fixtures import fixture_bytes
from tests.unit.test_stripe_derive import envelope_for as event_envelope

FIXTURES = Path(__file__).parent.parent / "fixtures"


def envelope_for(body: bytes, entity: str = "acme") -> RawEnvelope:
    """A Stripe envelope around any body (some fixtures are bare objects, not events)."""
    template = event_envelope(fixture_bytes("stripe-sync-engine/charge.succeeded__1.json"), entity)
    return template.model_copy(update={"body": body})


def outcome(parse: Any, data: bytes) -> tuple[str, str]:
    """repr of the value (tells 1 from 1.0 and -0.0 from 0.0), or the error's type and message."""
    try:
        return "ok", repr(parse(data))
    except (ValueError, RecursionError) as exc:
        return type(exc).__name__, str(exc)


EDGE_CASES = [
    b'{"a":NaN,"b":Infinity,"c":-Infinity}',
    b'{"a":1e400,"b":-1e400,"c":1e-400,"d":4.9e-324,"e":1.7976931348623157e308}',
    b'{"a":123456789012345678901234567890,"b":-9223372036854775809,"c":18446744073709551616}',
    b'{"a":-0,"b":-0.0,"c":1.0,"d":1E2,"e":0.1,"f":9007199254740993}',
    b'{"a":1,"a":2}',
    b'{"a":"\\ud800"}',
    b'{"\\udc00\\ud800":1}',
    b'{"a":"\xed\xa0\x80"}',
    b'{"a":"\\uD834\\uDD1E \\/ \\u0000 \\u00e9"}',
    b'{"a":"x\x01y"}',
    b'{"a":"\xff"}',
    b"\xef\xbb\xbf{}",
    '{"a":"é"}'.encode("utf-16"),
    '{"a":"é"}'.encode("utf-32"),
    b'{"a":1,}',
    b"[1,]",
    b'{"a":01}',
    b'{"a":.5}',
    b'{"a":5.}',
    b'{"a":+1}',
    b"{} x",
    b'{"a":1}\x00',
    b"\n\r\t {}  \n",
    b"\x0c{}",
    b"",
    b"nul",
    b'"text"',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000,
]


@pytest.mark.parametrize("data", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_parse_json_is_json_loads_on_edge_cases(data: bytes) -> None:
    assert outcome(parse_json, data) == outcome(json.loads, data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(JSON, st.booleans())
def test_parse_json_is_json_loads_on_any_document(value: Any, ascii_only: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert outcome(parse_json, data) == outcome(json.loads, data)


@settings(max_examples=1000)
@given(st.data())
def test_parse_json_is_json_loads_on_damaged_events(data: st.DataObject) -> None:
    body = bytearray(fixture_bytes("stripe-sync-engine/charge.succeeded__1.json"))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(body) - 1))
        body[position : position + 1] = data.draw(
            st.binary(max_size=2) | st.sampled_from([b'"', b",", b"\\", b"}"])
        )
    assert outcome(parse_json, bytes(body)) == outcome(json.loads, bytes(body))


@pytest.mark.parametrize("path", sorted(FIXTURES.rglob("stripe/**/*.json")), ids=lambda p: p.name)
def test_to_bytes_is_model_dump_json(path: Path) -> None:
    envelope = envelope_for(path.read_bytes())
    assert envelope.to_bytes() == envelope.model_dump_json().encode()
    assert RawEnvelope.from_bytes(envelope.to_bytes()) == RawEnvelope.model_validate_json(envelope.to_bytes())
    derived = derive(envelope)
    assert derived.to_bytes() == derived.model_dump_json().encode()
    assert type(derived).from_bytes(derived.to_bytes()) == derived


@given(st.text(), st.text())
def test_to_bytes_is_model_dump_json_for_any_text(entity: str, event_type: str) -> None:
    envelope = envelope_for(entity.encode("utf-8", "replace"), entity=entity)
    envelope = envelope.model_copy(update={"event_type": event_type})
    assert envelope.to_bytes() == envelope.model_dump_json().encode()
    derived = derive(
        envelope_for(fixture_bytes("stripe-sync-engine/charge.succeeded__1.json"), entity=entity)
    )
    assert derived.to_bytes() == derived.model_dump_json().encode()
