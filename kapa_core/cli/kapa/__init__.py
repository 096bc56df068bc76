"""The ``kapa`` client: Kapacitor's ``kapacitor`` command, against kapa-core or Kapacitor."""

from kapa_core.cli.kapa.main import main

__all__ = ["main"]
