"""Clients of the cloud APIs the autoscale nodes call, as Kapacitor 1.5.7's own clients
call them: Kubernetes (the scale subresource of ``extensions/v1beta1``, a ``Bearer`` token,
``ca-path``) and Docker Swarm (API v1.30, the section's TLS files). Each client takes an
element of its config section and an ``httpx.AsyncClient`` (``verify`` is the TLS check
it needs); errors are :class:`CloudError` with Kapacitor's words. The ``[[kubernetes]]``
and ``[[swarm]]`` services use them for their service tests.
"""

from __future__ import annotations

import json
import os
import ssl
import struct
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeAlias, TypeVar

import httpx

from kapa_core.alert.gojson import Struct, dumps
from kapa_core.errors import KapaError
from kapa_core.tlsconfig import TLS, TLSFileError

DEFAULT_NAMESPACE = "default"
SWARM_VERSION = "v1.30"


class CloudError(KapaError):
    """A cloud API call (or the client's setup) failed; Kapacitor's words."""


class ClusterSettings(Protocol):
    """What :func:`find_cluster` reads of a ``[[kubernetes]]``/``[[swarm]]``/``[[ec2]]``
    element (the sections belong to plugins; the core reads them through protocols)."""

    @property
    def id(self) -> str: ...

    @property
    def enabled(self) -> bool: ...


class K8sSettings(Protocol):
    """What :class:`K8sClient` reads of a ``[[kubernetes]]`` element."""

    @property
    def in_cluster(self) -> bool: ...

    @property
    def api_servers(self) -> Sequence[str]: ...

    @property
    def token(self) -> str: ...

    @property
    def ca_path(self) -> str: ...


class SwarmSettings(Protocol):
    """What :class:`SwarmClient` reads of a ``[[swarm]]`` element (with its TLS files,
    read by :meth:`TLS.of`)."""

    @property
    def servers(self) -> Sequence[str]: ...

    @property
    def ssl_ca(self) -> str: ...

    @property
    def ssl_cert(self) -> str: ...

    @property
    def ssl_key(self) -> str: ...


_Cluster = TypeVar("_Cluster", bound=ClusterSettings)


def go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def go_http_error(method: str, url: str, exc: Exception) -> str:
    """A failed request as Go's http.Client words it: ``Get "<url>": <reason>``, a
    refused connection as ``dial tcp <host:port>: connect: connection refused``."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        u = httpx.URL(url)
        port = u.port or (443 if u.scheme == "https" else 80)
        cause = exc.__cause__ or exc.__context__
        text = f"{reason} {cause!r}".lower()
        if "refused" in text or "all attempts to connect" in text:
            reason = f"dial tcp {u.host}:{port}: connect: connection refused"
    return f"{method.capitalize()} {go_quote(url)}: {reason}"


class _RoundRobin:
    """Kapacitor's clients pick the next URL for each request, starting at the second."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [httpx.URL(u) for u in urls]
        self.index = 0

    def pick(self, path: str) -> str:
        self.index = (self.index + 1) % len(self.urls)
        base = self.urls[self.index]
        return str(base.copy_with(raw_path=path.encode()))


def find_cluster(elements: Iterable[_Cluster] | None, cluster: str, service: str,
                 what: str = "cluster") -> _Cluster:
    """The ``[[<service>]]`` element with id ``cluster`` (Kapacitor's service lookup)."""
    for element in elements or ():
        if element.id == cluster:
            if not element.enabled:
                raise CloudError("service is not enabled")
            return element
    raise CloudError(f"unknown {service} {what} {go_quote(cluster)}, cannot get client")


def _verify(tls: TLS, setting: str) -> ssl.SSLContext | bool:
    try:
        return tls.verify()
    except TLSFileError as exc:
        raise CloudError(f"failed to read {setting} {go_quote(exc.path)}: {exc}") from None


#: Where a pod finds its service account (``in-cluster = true``).
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def k8s_client_config(config: K8sSettings) -> tuple[list[str], str, str]:
    """(API servers, token, CA file) of a ``[[kubernetes]]`` element, as Kapacitor's
    ClientConfig: in a cluster, the pod's service account and
    ``https://$KUBERNETES_SERVICE_HOST`` (else ``https://kubernetes``); CloudError in
    Kapacitor's words when a secret cannot be read."""
    if not config.in_cluster:
        if config.ca_path:
            try:
                with open(config.ca_path, "rb"):
                    pass
            except OSError as exc:
                raise CloudError(f"failed to read ca-path {go_quote(config.ca_path)}: "
                                 f"{_os_error(config.ca_path, exc)}") from None
        return list(config.api_servers), config.token, config.ca_path
    secrets = {}
    for name, what in (("namespace", "namespace"), ("token", "token"), ("ca.crt", "ca.crt")):
        path = os.path.join(SERVICE_ACCOUNT, name)
        try:
            with open(path, "rb") as f:
                secrets[name] = f.read()
        except OSError as exc:
            raise CloudError(f"could not load {what}: {_os_error(path, exc)}") from None
    host = os.environ.get("KUBERNETES_SERVICE_HOST") or "kubernetes"
    return [f"https://{host}"], secrets["token"].decode("utf-8", "replace"), \
        os.path.join(SERVICE_ACCOUNT, "ca.crt")


def _os_error(path: str, exc: OSError) -> str:
    """An *os.PathError as Go words it."""
    reason = {2: "no such file or directory", 13: "permission denied",
              21: "is a directory"}.get(exc.errno or 0, exc.strerror or str(exc))
    return f"open {path}: {reason}"


class K8sClient:
    """Kapacitor's Kubernetes client: the API servers in turn, the ``token`` as a
    ``Bearer`` authorization, ``ca-path`` as the trusted CA."""

    def __init__(self, config: K8sSettings, http: httpx.AsyncClient | None = None) -> None:
        self.urls = _RoundRobin([])
        self.http = http
        self.ca_path = ""
        self.verify: ssl.SSLContext | bool = True
        self.update(config)

    def update(self, config: K8sSettings) -> None:
        """Follow a changed config element, as Kapacitor's clients do for running tasks:
        new servers and token at once (the turn goes on), a new CA when it changed."""
        urls, token, ca_path = k8s_client_config(config)
        self.urls.urls = [httpx.URL(u) for u in urls]
        self.token = token
        if ca_path != self.ca_path:
            self.verify = _verify(TLS(ca=ca_path), "ca-path") if ca_path else True
            self.ca_path = ca_path

    async def versions(self) -> dict[str, Any]:
        """``GET /api`` (the service test)."""
        return await self._request("GET", "/api")

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = self.urls.pick(path)
        try:
            response = await self.http.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise CloudError(f"k8s client request failed: {go_http_error(method, url, exc)}"
                             ) from None
        try:
            doc = response.json() if response.content else {}
        except ValueError as exc:
            raise CloudError("failed to understand k8s server response: Code: "
                             f"{response.status_code}: {exc}") from None
        if response.status_code != 200:
            raise CloudError(str(doc.get("message", "")) if isinstance(doc, dict) else "")
        return doc if isinstance(doc, dict) else {}

    async def get_scale(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        path = f"/apis/extensions/v1beta1/namespaces/{namespace}/{kind}/{name}/scale"
        try:
            return await self._request("GET", path)
        except CloudError as exc:
            raise CloudError(f"failed to get scale {namespace}/{kind}/{name}: {exc}") from None

    async def replicas(self, rid: tuple[str, str, str]) -> int:
        scale = await self.get_scale(*rid)
        return _int((scale.get("spec") or {}).get("replicas", 0))

    async def set_replicas(self, rid: tuple[str, str, str], replicas: int) -> None:
        namespace, kind, name = rid
        scale = await self.get_scale(namespace, kind, name)
        meta = scale.get("metadata") or {}
        patch = [Struct(op="replace", path="/spec/replicas", value=replicas)]
        try:
            await self._request("PATCH", str(meta.get("selfLink", "")),
                                content=(dumps(patch) + "\n").encode(),
                                headers={"Content-Type": "application/json-patch+json"})
        except CloudError as exc:
            raise CloudError(f"failed to update scale {namespace}/{kind}/"
                             f"{meta.get('name', '')}: {exc}") from None


def _int(value: Any) -> int:
    return value if type(value) is int else int(value or 0)


# -- Docker's ServiceSpec as Go decodes and encodes it -------------------------------------
# Kapacitor decodes the service into Docker's Go types (vendored with Kapacitor 1.5.7) and
# sends their encoding back: fields in struct order, unknown ones dropped, ``omitempty``
# zero values left out, absent non-omitempty fields written as their zero value.

#: struct -> (field, type, omitempty); a type is a scalar kind ("str", "int", "bool",
#: "f32", "map" for map[string]string), a struct name, ("ptr", type) or ("list", type).
#: A Go type: a scalar or struct name, ("ptr", type) or ("list", type).
_GoType: TypeAlias = "str | tuple[str, _GoType]"
_GO_STRUCTS: dict[str, tuple[tuple[str, _GoType, bool], ...]] = {
    "ServiceSpec": (("Name", "str", True), ("Labels", "map", True),
                    ("TaskTemplate", "TaskSpec", True), ("Mode", "ServiceMode", True),
                    ("UpdateConfig", ("ptr", "UpdateConfig"), True),
                    ("Networks", ("list", "NetworkAttachmentConfig"), True),
                    ("EndpointSpec", ("ptr", "EndpointSpec"), True)),
    "TaskSpec": (("ContainerSpec", "ContainerSpec", True),
                 ("Resources", ("ptr", "ResourceRequirements"), True),
                 ("RestartPolicy", ("ptr", "RestartPolicy"), True),
                 ("Placement", ("ptr", "Placement"), True),
                 ("Networks", ("list", "NetworkAttachmentConfig"), True),
                 ("LogDriver", ("ptr", "Driver"), True), ("ForceUpdate", "int", False)),
    "ContainerSpec": (("Image", "str", True), ("Labels", "map", True),
                      ("Command", ("list", "str"), True), ("Args", ("list", "str"), True),
                      ("Hostname", "str", True), ("Env", ("list", "str"), True),
                      ("Dir", "str", True), ("User", "str", True),
                      ("Groups", ("list", "str"), True), ("TTY", "bool", True),
                      ("OpenStdin", "bool", True), ("Mounts", ("list", "Mount"), True),
                      ("StopGracePeriod", ("ptr", "int"), True),
                      ("Healthcheck", ("ptr", "HealthConfig"), True),
                      ("Hosts", ("list", "str"), True),
                      ("DNSConfig", ("ptr", "DNSConfig"), True),
                      ("Secrets", ("list", ("ptr", "SecretReference")), True)),
    "DNSConfig": (("Nameservers", ("list", "str"), True), ("Search", ("list", "str"), True),
                  ("Options", ("list", "str"), True)),
    "Mount": (("Type", "str", True), ("Source", "str", True), ("Target", "str", True),
              ("ReadOnly", "bool", True), ("BindOptions", ("ptr", "BindOptions"), True),
              ("VolumeOptions", ("ptr", "VolumeOptions"), True),
              ("TmpfsOptions", ("ptr", "TmpfsOptions"), True)),
    "BindOptions": (("Propagation", "str", True),),
    "VolumeOptions": (("NoCopy", "bool", True), ("Labels", "map", True),
                      ("DriverConfig", ("ptr", "Driver"), True)),
    "Driver": (("Name", "str", True), ("Options", "map", True)),
    "TmpfsOptions": (("SizeBytes", "int", True), ("Mode", "int", True)),
    "HealthConfig": (("Test", ("list", "str"), True), ("Interval", "int", True),
                     ("Timeout", "int", True), ("Retries", "int", True)),
    "SecretReference": (("File", ("ptr", "SecretReferenceFileTarget"), False),
                        ("SecretID", "str", False), ("SecretName", "str", False)),
    "SecretReferenceFileTarget": (("Name", "str", False), ("UID", "str", False),
                                  ("GID", "str", False), ("Mode", "int", False)),
    "ResourceRequirements": (("Limits", ("ptr", "Resources"), True),
                             ("Reservations", ("ptr", "Resources"), True)),
    "Resources": (("NanoCPUs", "int", True), ("MemoryBytes", "int", True)),
    "RestartPolicy": (("Condition", "str", True), ("Delay", ("ptr", "int"), True),
                      ("MaxAttempts", ("ptr", "int"), True), ("Window", ("ptr", "int"), True)),
    "Placement": (("Constraints", ("list", "str"), True),),
    "NetworkAttachmentConfig": (("Target", "str", True), ("Aliases", ("list", "str"), True)),
    "ServiceMode": (("Replicated", ("ptr", "ReplicatedService"), True),
                    ("Global", ("ptr", "GlobalService"), True)),
    "ReplicatedService": (("Replicas", ("ptr", "int"), True),),
    "GlobalService": (),
    "UpdateConfig": (("Parallelism", "int", False), ("Delay", "int", True),
                     ("FailureAction", "str", True), ("Monitor", "int", True),
                     ("MaxFailureRatio", "f32", False)),
    "EndpointSpec": (("Mode", "str", True), ("Ports", ("list", "PortConfig"), True)),
    "PortConfig": (("Name", "str", True), ("Protocol", "str", True),
                   ("TargetPort", "int", True), ("PublishedPort", "int", True),
                   ("PublishMode", "str", True)),
}
_ZERO: dict[str, str | int | bool | float | None] = {
    "str": "", "int": 0, "bool": False, "f32": 0.0, "map": None}


class _GoFloat32(float):
    """A float32 field: written with float32's shortest digits."""


def _f32(value: float) -> float:
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded


def _go_decode(value: Any, kind: _GoType) -> Any:
    """``value`` (decoded JSON) as Go holds it in a field of type ``kind``; None is nil."""
    if isinstance(kind, tuple):
        if value is None:
            return None
        if kind[0] == "ptr":
            return _go_decode(value, kind[1]) if not isinstance(kind[1], str) or \
                kind[1] in _GO_STRUCTS else value
        return [_go_decode(v, kind[1]) for v in value] if isinstance(value, list) else None
    if kind in _GO_STRUCTS:
        fields = {name.lower(): name for name, _, _ in _GO_STRUCTS[kind]}
        types = {name: t for name, t, _ in _GO_STRUCTS[kind]}
        out: dict[str, Any] = {}
        for key, item in (value.items() if isinstance(value, dict) else ()):
            name = key if key in types else fields.get(key.lower())
            if name is not None:  # Go matches field names without regard to case
                out[name] = _go_decode(item, types[name])
        return out
    if value is None:
        return _ZERO[kind]
    if kind == "f32":
        return _GoFloat32(_f32(float(value)))
    if kind == "map" and isinstance(value, dict):
        return dict(sorted(value.items()))
    return value


def _go_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == 0 and \
        not isinstance(value, bool) or (isinstance(value, dict | list) and not value)


def _go_encode(value: Any, kind: _GoType) -> Any:
    """The decoded value ready for JSON, as Go's encoder writes the field."""
    if isinstance(kind, tuple):
        if value is None:
            return None
        if kind[0] == "ptr":
            return _go_encode(value, kind[1])
        return [_go_encode(v, kind[1]) for v in value]
    if kind in _GO_STRUCTS:
        out = Struct()
        for name, t, omitempty in _GO_STRUCTS[kind]:
            item = value.get(name) if isinstance(value, dict) else None
            if item is None and t in _GO_STRUCTS:
                item = {}
            if item is None and not isinstance(t, tuple):
                item = _ZERO[t]
            pointer = isinstance(t, tuple) and t[0] == "ptr"
            if omitempty and t not in _GO_STRUCTS and (item is None if pointer
                                                       else _go_empty(item)):
                continue  # a pointer is left out only when nil
            out[name] = _go_encode(item, t)
        return out
    return value


def _go_json(value: Any) -> str:
    if isinstance(value, _GoFloat32):
        return _float32_text(float(value))
    if isinstance(value, dict):
        keys = value.keys() if getattr(value, "ordered", False) else sorted(value)
        return "{" + ",".join(f"{dumps(str(k))}:{_go_json(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_go_json(v) for v in value) + "]"
    return dumps(value)


def _float32_text(value: float) -> str:
    """Go's JSON text of a float32: its shortest digits, plain between 1e-6 and 1e21."""
    if value == 0:
        return "0"
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if _f32(float(text)) == value:
            break
    number = float(text)
    if 1e-6 <= abs(number) < 1e21:
        plain = format(Decimal(text), "f")
        return plain.rstrip("0").rstrip(".") if "." in plain else plain
    mantissa, _, exp = f"{Decimal(text):e}".partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    sign = "-" if exp.startswith("-") else "+"
    return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0').rjust(2, '0')}"


def swarm_service(doc: Any) -> dict[str, Any]:
    """A GET /services/<id> answer as Kapacitor keeps it: ID, Version and the Spec in
    Docker's types."""
    doc = doc if isinstance(doc, dict) else {}
    fields = {k.lower(): k for k in doc}

    def get(name: str) -> Any:
        return doc.get(name, doc.get(fields.get(name.lower(), ""), None))
    return {"ID": get("ID") or "", "Version": get("Version") or {},
            "Spec": _go_decode(get("Spec") or {}, "ServiceSpec")}


def swarm_spec_body(spec: Any) -> str:
    """A decoded ServiceSpec as Kapacitor's swarm client sends it back (json.Encoder)."""
    return _go_json(_go_encode(spec, "ServiceSpec")) + "\n"


def swarm_tls_check(config: SwarmSettings) -> None:
    """Kapacitor's tlsconfig.Create of a ``[[swarm]]`` element: its checks and words."""
    if config.ssl_cert and config.ssl_key:
        for path in (config.ssl_cert, config.ssl_key):
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise CloudError("Could not load TLS client key/certificate: "
                                 f"{_os_error(path, exc)}") from None
    elif config.ssl_cert:
        raise CloudError("Must provide both key and cert files: only cert file provided.")
    elif config.ssl_key:
        raise CloudError("Must provide both key and cert files: only key file provided.")
    if config.ssl_ca:
        try:
            with open(config.ssl_ca, "rb"):
                pass
        except OSError as exc:
            raise CloudError(f"Could not load TLS CA: {_os_error(config.ssl_ca, exc)}"
                             ) from None


class SwarmClient:
    """Kapacitor's Docker Swarm client: the servers in turn, the section's TLS files."""

    def __init__(self, config: SwarmSettings, http: httpx.AsyncClient | None = None) -> None:
        swarm_tls_check(config)
        self.urls = _RoundRobin(list(config.servers))
        self.http = http
        self.tls = TLS.of(config)
        self.verify = _verify(self.tls, "ssl files")

    def update(self, config: SwarmSettings) -> None:
        """Follow a changed config element (see K8sClient.update)."""
        swarm_tls_check(config)
        self.urls.urls = [httpx.URL(u) for u in config.servers]
        if TLS.of(config) != self.tls:
            self.tls = TLS.of(config)
            self.verify = _verify(self.tls, "ssl files")

    async def version(self) -> str:
        """``GET /info``'s ServerVersion (the service test)."""
        info = await self._request("GET", "/info")
        return str(info.get("ServerVersion", "")) if isinstance(info, dict) else ""

    async def _request(self, method: str, path: str, content: bytes | None = None) -> Any:
        assert self.http is not None
        url = self.urls.pick(path)
        try:
            response = await self.http.request(method, url, content=content)
        except httpx.HTTPError as exc:
            raise CloudError(f"swarm client request failed: "
                             f"{go_http_error(method, url, exc)}") from None
        if response.status_code != 200:
            try:
                message = response.json().get("message", "")
            except (ValueError, AttributeError):
                raise CloudError("failed to understand swarm server response: Code: "
                                 f"{response.status_code}") from None
            if not message:
                raise CloudError("failed to understand swarm server error response: "
                                 f"Code: {response.status_code}")
            raise CloudError(str(message))
        try:
            return response.json() if content is None else None
        except ValueError as exc:
            raise CloudError("failed to decode swarm server response into *swarm.Service: "
                             f"Code: {response.status_code}: {exc}") from None

    async def service(self, name: str) -> dict[str, Any]:
        try:
            doc = await self._request("GET", f"/{SWARM_VERSION}/services/{name}")
        except CloudError as exc:
            raise CloudError(f"failed to get swarm service for {go_quote(name)}: {exc}"
                             ) from None
        return swarm_service(doc)

    @staticmethod
    def _replicated(service: dict[str, Any]) -> dict[str, Any]:
        mode = (service.get("Spec") or {}).get("Mode") or {}
        replicated = mode.get("Replicated")
        if not isinstance(replicated, dict) or replicated.get("Replicas") is None:
            # Kapacitor dereferences a nil pointer here; an error for this point
            raise CloudError("swarm service is not replicated")
        return replicated

    async def replicas(self, name: str) -> int:
        return _int(self._replicated(await self.service(name))["Replicas"])

    async def set_replicas(self, name: str, replicas: int) -> None:
        service = await self.service(name)
        self._replicated(service)["Replicas"] = replicas
        version_doc = service.get("Version")
        version = _int(version_doc.get("Index", 0)) if isinstance(version_doc, dict) else 0
        sid = str(service.get("ID", ""))
        await self._request("POST", f"/{SWARM_VERSION}/services/{sid}/update?version={version}",
                            content=swarm_spec_body(service.get("Spec")).encode())
