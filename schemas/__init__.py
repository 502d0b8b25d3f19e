"""Typed contracts shared by every revstream service. No I/O lives here.

Everything that crosses a Kafka topic is one of these models, serialized as JSON.
"""
