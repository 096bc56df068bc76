"""Scrape targets from discovered groups, as Prometheus' retrieval (vendored by Kapacitor
1.5.7) builds them: ``populateLabels``, the target URL, its hash and scrape offset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlencode

ADDRESS = "__address__"
SCHEME = "__scheme__"
METRICS_PATH = "__metrics_path__"
PARAM = "__param_"
META = "__meta_"
_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


class TargetError(ValueError):
    """A discovered target that cannot be scraped (Prometheus drops its whole group)."""


def _fnv(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    return h


def split_host_port(address: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``: ValueError when ``address`` has no single port."""
    i = address.rfind(":")
    if i < 0:
        raise ValueError("missing port in address")
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 == len(address):
            raise ValueError("missing port in address")
        if end + 1 != i:
            raise ValueError("too many colons in address" if address[end + 1] == ":"
                             else "missing port in address")
        host = address[1:end]
        if "[" in address[1:end] or "]" in address[end + 1:]:
            raise ValueError("unexpected bracket in address")
    else:
        host = address[:i]
        if ":" in host:
            raise ValueError("too many colons in address")
        if "[" in host or "]" in host:
            raise ValueError("unexpected bracket in address")
    return host, address[i + 1:]


def _needs_port(address: str) -> bool:
    try:
        split_host_port(address)
        return False
    except ValueError:
        pass
    try:
        split_host_port(address + ":1234")
        return True
    except ValueError:
        return False


def populate_labels(address: str, group_labels: Mapping[str, str], scheme: str,
                    metrics_path: str, job: str,
                    params: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The labels of one target (``populateLabels`` without relabelling): the group's
    labels under the address, defaults for scheme, path and job, ``__param_*`` from the
    scraper's params, a default port by scheme, ``__meta_*`` dropped, ``instance``
    defaulting to the address. TargetError when the target cannot be scraped."""
    labels = {ADDRESS: address}
    for name, value in group_labels.items():
        labels.setdefault(name, value)
    labels.setdefault(SCHEME, scheme)
    labels.setdefault(METRICS_PATH, metrics_path)
    labels.setdefault("job", job)
    for name, values in params.items():
        if values:
            labels[PARAM + name] = values[0]
    addr = labels[ADDRESS]
    if _needs_port(addr):
        target_scheme = labels[SCHEME]
        if target_scheme in ("http", ""):
            addr += ":80"
        elif target_scheme == "https":
            addr += ":443"
        else:
            raise TargetError(f"invalid scheme: {scheme!r}")
        labels[ADDRESS] = addr
    if "/" in addr:
        raise TargetError(f"{addr!r} is not a valid hostname")
    for name in [n for n in labels if n.startswith(META)]:
        del labels[name]
    labels.setdefault("instance", labels[ADDRESS])
    return labels


@dataclass(frozen=True)
class Target:
    """One target: its labels (``__``-prefixed ones included), the public ones samples
    get, its URL and Prometheus' hash of it (the identity and the scrape offset)."""

    labels: Mapping[str, str]
    public: tuple[tuple[str, str], ...]
    url: str
    hash: int

    @property
    def instance(self) -> str:
        return self.labels.get("instance", "")

    def offset(self, interval_ns: int, now_ns: int) -> int:
        """Nanoseconds until the first scrape (Prometheus' ``Target.offset``)."""
        base = now_ns % interval_ns
        offset = self.hash % interval_ns
        nxt = base + offset
        if nxt > interval_ns:
            nxt -= interval_ns
        return nxt


def target_url(labels: Mapping[str, str], params: Mapping[str, Sequence[str]]) -> str:
    """``Target.URL()``: scheme, address, metrics path and the query of the params with
    the ``__param_*`` labels over their first values (keys sorted, as Go encodes)."""
    query: dict[str, list[str]] = {k: list(v) for k, v in params.items()}
    for name, value in labels.items():
        if name.startswith(PARAM):
            key = name[len(PARAM):]
            if query.get(key):
                query[key][0] = value
            else:
                query[key] = [value]
    path = labels.get(METRICS_PATH, "")
    if path and not path.startswith("/"):
        path = "/" + path
    path = quote(path, safe="/:@!$&()*+,;=-._~")  # as Go's URL.EscapedPath keeps them
    url = f"{labels.get(SCHEME, '')}://{labels.get(ADDRESS, '')}{path}"
    if query:
        url += "?" + urlencode([(k, v) for k in sorted(query) for v in query[k]])
    return url


def fingerprint(labels: Mapping[str, str]) -> int:
    """``LabelSet.Fingerprint()``: FNV-1a over the sorted names and values."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        h = _fnv(h, name.encode() + b"\xff" + labels[name].encode() + b"\xff")
    return h


def make_target(address: str, group_labels: Mapping[str, str], scheme: str,
                metrics_path: str, job: str,
                params: Mapping[str, Sequence[str]]) -> Target:
    labels = populate_labels(address, group_labels, scheme, metrics_path, job, params)
    url = target_url(labels, params)
    h = _fnv(_FNV_OFFSET, f"{fingerprint(labels):016x}".encode() + url.encode())
    public = tuple(sorted((k, v) for k, v in labels.items() if not k.startswith("__")))
    return Target(labels, public, url, h)


__all__ = ["Target", "TargetError", "fingerprint", "make_target", "populate_labels",
           "split_host_port", "target_url"]
