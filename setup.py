"""Builds the one compiled module, the line-protocol fast path; pyproject.toml holds the
rest of the metadata. ``optional=True``: without a C compiler the install still works and
kapa_core.models.lineprotocol falls back to its pure-Python parser."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("kapa_core.models._lineparse", ["kapa_core/models/_lineparse.c"],
                             optional=True)])
