"""reprise: containerized, bit-for-bit reproducible ML training runs."""

__version__ = "0.1.0"
