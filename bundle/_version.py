"""The pybundle version, reported as ``sdk.version`` in every dump and manifest."""

__version__ = "0.1.0"
