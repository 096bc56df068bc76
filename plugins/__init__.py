"""Built-in plugins, installed as the import package ``kapa_plugins``.

They are registered through the ``kapa_core.plugins`` entry-point group, like any
third-party package, and import from kapa-core only ``kapa_core.plugin_api``.
"""
