"""The largest body ingest accepts still fits Kafka's default record limit once enveloped, and so
does the dead letter that would carry that envelope (schemas.envelope.MAX_BODY_BYTES)."""

from datetime import UTC, datetime

import pytest

from revstream.settings import Settings, SettingsError, load_settings
from schemas.dead_letter import DeadLetter
from schemas.envelope import MAX_BODY_BYTES, RawEnvelope, Source

KAFKA_DEFAULT_RECORD_LIMIT = 1_048_576  # producer max.request.size and broker message.max.bytes
HEADROOM = 48_576  # record batch framing and the headers a client may add


def test_the_largest_envelope_and_its_dead_letter_fit_a_default_kafka_record() -> None:
    envelope = RawEnvelope(
        source=Source.STRIPE,
        endpoint="e" * 255,
        entity="e" * 255,
        provider_event_id="evt_" + "x" * 251,
        event_type="t" * 255,
        livemode=True,
        received_at=datetime.now(UTC),
        content_type="application/json; charset=utf-8" + " " * 200,
        body=b"\xff" * MAX_BODY_BYTES,
    ).to_bytes()
    letter = DeadLetter(
        reason="r" * 500, topic="p" * 249, stage="processor", failed_at=datetime.now(UTC), payload=envelope
    ).to_bytes()
    assert len(envelope) < len(letter) <= KAFKA_DEFAULT_RECORD_LIMIT - HEADROOM


def test_a_larger_body_limit_is_refused_at_start() -> None:
    assert Settings.model_validate({}).max_body_bytes == MAX_BODY_BYTES
    with pytest.raises(SettingsError, match="REVSTREAM_MAX_BODY_BYTES"):
        load_settings({"REVSTREAM_MAX_BODY_BYTES": str(MAX_BODY_BYTES + 1)})
