"""``python -m kapa_core.cli.kapa``: the ``kapa`` client."""

from kapa_core.cli.kapa.main import main

main()
