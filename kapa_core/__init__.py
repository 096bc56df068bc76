"""kapa-core: a stream processing engine for time series, compatible with Kapacitor 1.x."""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("kapa-core")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

#: The Kapacitor API version this build answers as (X-Kapacitor-Version, /debug/vars).
KAPACITOR_COMPAT_VERSION = "1.5.7"
