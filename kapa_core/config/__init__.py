"""Configuration: sections and their schema, TOML/env/override/CLI layering, TOML output."""
