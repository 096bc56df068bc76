"""Pipelines: the node specs a TICKscript builds, their properties, checks and DOT output."""
