"""Go's text/template (and html/template's text escaping), parsed once, run many times.

Kapacitor's alert ids, messages and details, deadman messages and many handler options
are Go templates (``{{ .ID }}``, ``{{ index .Tags "host" }}``, ``{{ if eq .Level "OK" }}…
{{ else }}…{{ end }}``, ``{{ index .Fields "value" | printf "%0.3f" }}``). ``parse`` turns
one into closures; ``Template.execute(data)`` renders it. Maps are Python dicts, struct
fields are attributes or dict keys, methods are callables (``.Time.Unix``).
"""

from __future__ import annotations

from kapa_core.gotemplate.compiler import Template, TemplateError, parse
from kapa_core.gotemplate.gofmt import go_format
from kapa_core.gotemplate.gotime import GoTime, StringMap

__all__ = ["GoTime", "StringMap", "Template", "TemplateError", "go_format", "parse"]
