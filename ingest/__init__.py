"""The HTTP edge: verify a provider request, wrap its raw bytes in an envelope, publish it to
Kafka, and answer only after the broker acknowledged it. Nothing else happens here."""
