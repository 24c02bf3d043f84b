"""``bundle-pack``: turn a pybundle bundle into a deployable artifact.

Two formats (see ``docs``/the bundle-formats spec):

* ``zip`` - the ZIP bundle of the bundle spec: ``airflow-metadata.yaml``, the DAG source verbatim and a
  runnable executable (mode 0755), byte-for-byte reproducible.
* ``executable`` - one self-contained file: launcher, source, manifest and the 64-byte ``AFBNDL01``
  trailer that apache-airflow-task-sdk 1.3.2's ``ExecutableCoordinator`` discovers.

Both carry the same launcher: a ``#!/bin/sh`` stub plus an embedded ZIP with the bundle's code, pybundle's
pure-Python runtime, msgpack's pure-Python fallback and the bundle's vendored dependencies (wheels
resolved by pip, :mod:`packer.deps` / :mod:`packer.vendor`), so a worker needs nothing but a
``python3 >= 3.10`` (of the version compiled wheels were built for), which it runs isolated (``-I -S``).
"""

from __future__ import annotations


class PackError(Exception):
    """A failure the CLI reports as one ``error: <message>`` line with exit status 1."""
