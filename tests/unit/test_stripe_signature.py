"""Stripe-Signature verification against published vectors, rotation and the tolerance window."""

import json

import pytest

from ingest.rejections import Rejected
from ingest.stripe_webhook import read_event, verify_signature
from tests.stripe_fixtures import STRIPE, stripe_signature

VECTORS = json.loads((STRIPE / "signature_vectors" / "vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[v["payload_file"] for v in VECTORS])
def test_published_vectors_verify(vector: dict) -> None:
    body = (STRIPE / "signature_vectors" / vector["payload_file"]).read_bytes()
    verify_signature(body, vector["header"], [vector["secret"]], 300, now=vector["timestamp"] + 10)


@pytest.mark.parametrize("vector", VECTORS[:1])
def test_one_changed_byte_fails(vector: dict) -> None:
    body = (STRIPE / "signature_vectors" / vector["payload_file"]).read_bytes()
    with pytest.raises(Rejected) as err:
        verify_signature(
            body.replace(b"}", b" }", 1), vector["header"], [vector["secret"]], 300, now=vector["timestamp"]
        )
    assert (err.value.status, err.value.reason) == (400, "bad_signature")


def test_rotation_accepts_either_secret_and_drops_the_removed_one() -> None:
    body, now = b'{"id":"evt_1","type":"charge.succeeded"}', 1_700_000_000
    old, new = "whsec_old", "whsec_new"
    signed_old = stripe_signature(body, old, now)
    signed_new = stripe_signature(body, new, now)
    verify_signature(body, signed_old, [new, old], 300, now)
    verify_signature(body, signed_new, [new, old], 300, now)
    with pytest.raises(Rejected):
        verify_signature(body, signed_old, [new], 300, now)


@pytest.mark.parametrize(
    ("header", "age", "reason"),
    [
        (None, 0, "missing_signature"),
        ("", 0, "missing_signature"),
        ("garbage", 0, "bad_signature"),
        ("t=abc,v1=00", 0, "bad_signature"),
        ("SIGNED", 301, "stale_timestamp"),
        ("SIGNED", -301, "stale_timestamp"),
    ],
)
def test_refusals(header: str | None, age: int, reason: str) -> None:
    body, now = b'{"id":"evt_1","type":"x"}', 1_700_000_000
    if header == "SIGNED":
        header = stripe_signature(body, "whsec_s", now - age)
    with pytest.raises(Rejected) as err:
        verify_signature(body, header, ["whsec_s"], 300, now)
    assert err.value.reason == reason and err.value.status == 400


def test_non_utf8_body_is_a_client_error() -> None:
    with pytest.raises(Rejected) as err:
        verify_signature(b"\xff\xfe", stripe_signature(b"\xff\xfe", "whsec_s", 5), ["whsec_s"], 300, 5)
    assert err.value.reason == "malformed_body"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"{}",
        b'{"id": 1, "type": "x"}',
        b'{"id":"e","type":"t","livemode":"yes"}',
        b"not json",
        b"[" * 100_000,
    ],
)
def test_read_event_refuses_non_events(body: bytes) -> None:
    with pytest.raises(Rejected) as err:
        read_event(body)
    assert err.value.status == 400


def test_read_event_keys_by_object() -> None:
    facts = read_event(
        b'{"id":"evt_9","type":"charge.succeeded","livemode":true,"data":{"object":{"id":"ch_1"}}}'
    )
    assert (facts.event_id, facts.event_type, facts.livemode, facts.object_id) == (
        "evt_9",
        "charge.succeeded",
        True,
        "ch_1",
    )
