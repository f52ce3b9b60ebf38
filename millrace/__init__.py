"""Millrace: keeps forecasting models alive on event streams.

This package holds the process glue (settings, CLI, embedded broker, Kafka I/O, importers).
Domain logic lives in ``ml``, the stream adapter in ``streams``, the HTTP adapter in ``api`` and
the event contracts in ``schemas``.
"""

__version__ = "0.1.0"
