"""Audit receipts: the canonical encoding, the hash chain and the Merkle anchors. Pure, no I/O.

A receipt says "this money-carrying row became this state, because of this provider event".
The chain and the anchors make any later edit to a receipt detectable:

- Canonical encoding (what is hashed): the receipt's fields as JSON with sorted keys, no
  whitespace (separators "," and ":"), ASCII only (non-ASCII escaped as \\uXXXX), UTF-8 bytes:

      {"amount_minor":999,"change":"created","counted":true,"currency":"eur","entity":"default",
       "kind":"payment","livemode":true,"prev_hash":"000...0","record_id":"stripe:payment:pi_1",
       "record_type":"ledger","recorded_at":"2025-01-31T12:00:00.123456Z","refunded_minor":null,"seq":1,
       "source_event_id":"evt_1","status":"succeeded","version":1700000000123}

  (one line; wrapped here). `recorded_at` is UTC with exactly six fractional digits and a "Z".
  Absent values are JSON null (`counted` for orders, `refunded_minor` for ledger rows).
- Receipt hash: lowercase hex SHA-256 of those bytes. `prev_hash` is the previous receipt's hash;
  the first receipt's is 64 zeros (GENESIS_HASH). Sequence numbers start at 1 and have no gaps.
- Merkle root of receipts first..last (an anchor every ANCHOR_EVERY = 256 receipts): RFC 6962
  Merkle tree hash over the receipts' hashes (32 raw bytes each) in sequence order: a leaf is
  SHA-256(0x00 || hash), an inner node SHA-256(0x01 || left || right), and a list of n > 1
  leaves splits at the largest power of two below n. The root is stored as lowercase hex.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
ANCHOR_EVERY = 256

RECORD_LEDGER = "ledger"
RECORD_ORDER = "order"
CHANGE_CREATED = "created"
CHANGE_CHANGED = "changed"


@dataclass(frozen=True)
class Receipt:
    """One entry of the audit chain (the columns of `audit_receipts`, minus `hash`)."""

    seq: int
    record_type: str  # RECORD_LEDGER | RECORD_ORDER
    record_id: str
    version: int  # the row's version after the change
    change: str  # CHANGE_CREATED | CHANGE_CHANGED
    kind: str  # ledger kind (payment, refund, ...) or "order"
    entity: str
    livemode: bool
    amount_minor: int
    currency: str
    counted: bool | None  # ledger rows only
    status: str
    refunded_minor: int | None  # orders only
    source_event_id: str
    recorded_at: datetime
    prev_hash: str


def canonical_time(value: datetime) -> str:
    """UTC, microseconds always written, "Z" suffix: one spelling per instant."""
    if value.tzinfo is None:
        raise ValueError("recorded_at must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


RECEIPT_FIELDS = tuple(f.name for f in fields(Receipt))
_RECORDED_AT = RECEIPT_FIELDS.index("recorded_at")
_json_str = json.encoder.encode_basestring_ascii  # the escaping json.dumps(ensure_ascii=True) uses
_LITERAL = {True: "true", False: "false", None: "null"}
_UNPACKED = (  # canonical_values unpacks the fields in this order: it must be Receipt's
    "seq", "record_type", "record_id", "version", "change", "kind", "entity", "livemode", "amount_minor",
    "currency", "counted", "status", "refunded_minor", "source_event_id", "recorded_at", "prev_hash",
)  # fmt: skip
assert RECEIPT_FIELDS == _UNPACKED, "Receipt changed: update canonical_values"


def canonical_values(values: tuple[Any, ...], recorded_at: str | None = None) -> bytes:
    """canonical_bytes of the receipt whose fields (in Receipt's order) are `values`, without
    building the dataclass: the hot path of AuditTrail.record. `recorded_at` may pass
    canonical_time(values' recorded_at) computed once per batch. Byte-identical to the json.dumps
    encoding (tests/unit/test_receipt_encoding.py checks it property-based): when every value has
    exactly the type a receipt holds (str, int, bool, None where allowed) the keys are written in
    sorted order with each value as json.dumps writes it; anything else goes through json.dumps."""
    if recorded_at is None:
        recorded_at = canonical_time(values[_RECORDED_AT])
    (
        seq, record_type, record_id, version, change, kind, entity, livemode, amount_minor, currency,
        counted, status, refunded_minor, source_event_id, _, prev_hash,
    ) = values  # fmt: skip
    if not (
        type(seq) is int
        and type(version) is int
        and type(amount_minor) is int
        and (refunded_minor is None or type(refunded_minor) is int)
        and type(livemode) is bool
        and (counted is None or type(counted) is bool)
        and type(record_type) is str
        and type(record_id) is str
        and type(change) is str
        and type(kind) is str
        and type(entity) is str
        and type(currency) is str
        and type(status) is str
        and type(source_event_id) is str
        and type(prev_hash) is str
    ):
        return _json_encoding(Receipt(*values))
    j = _json_str
    return (
        f'{{"amount_minor":{amount_minor},"change":{j(change)},"counted":{_LITERAL[counted]},'
        f'"currency":{j(currency)},"entity":{j(entity)},"kind":{j(kind)},"livemode":{_LITERAL[livemode]},'
        f'"prev_hash":{j(prev_hash)},"record_id":{j(record_id)},"record_type":{j(record_type)},'
        f'"recorded_at":{j(recorded_at)},"refunded_minor":{_LITERAL[None] if refunded_minor is None else refunded_minor},'
        f'"seq":{seq},"source_event_id":{j(source_event_id)},"status":{j(status)},"version":{version}}}'
    ).encode("ascii")


def _json_encoding(receipt: Receipt) -> bytes:
    """The definition: the fields as JSON, sorted keys, compact, ASCII only."""
    fields_: dict[str, Any] = asdict(receipt)
    fields_["recorded_at"] = canonical_time(receipt.recorded_at)
    return json.dumps(fields_, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("utf-8")


def canonical_bytes(receipt: Receipt) -> bytes:
    """The exact bytes the receipt hash covers (see the module docstring)."""
    return canonical_values(tuple(getattr(receipt, name) for name in RECEIPT_FIELDS))


def receipt_hash(receipt: Receipt) -> str:
    return hashlib.sha256(canonical_bytes(receipt)).hexdigest()


def values_hash(values: tuple[Any, ...], recorded_at: str | None = None) -> str:
    """receipt_hash of the receipt whose fields (in Receipt's order) are `values`."""
    return hashlib.sha256(canonical_values(values, recorded_at)).hexdigest()


def tree_hash(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash (MTH) of a non-empty list of leaf inputs."""
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two < len(leaves)
    return hashlib.sha256(b"\x01" + tree_hash(leaves[:split]) + tree_hash(leaves[split:])).digest()


def merkle_root(hashes: list[str]) -> str:
    """RFC 6962 Merkle tree hash over hex receipt hashes, in the order given."""
    if not hashes:
        raise ValueError("a Merkle root needs at least one receipt")
    return tree_hash([bytes.fromhex(h) for h in hashes]).hex()


def anchor_ranges(last_before: int, last_after: int) -> list[tuple[int, int]]:
    """The (first_seq, last_seq) blocks completed by appending receipts last_before+1..last_after."""
    ranges = []
    end = (last_before // ANCHOR_EVERY + 1) * ANCHOR_EVERY
    while end <= last_after:
        ranges.append((end - ANCHOR_EVERY + 1, end))
        end += ANCHOR_EVERY
    return ranges
