"""The composition root: settings, CLI and the wiring of broker, stores and handlers.

This is the only package that imports schemas/, ingest/, processors/ and sinks/ together.
"""
