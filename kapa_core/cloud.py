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
from typing import Any

import httpx

from kapa_core.alert.gojson import Struct, dumps
from kapa_core.errors import KapaError
from kapa_core.tlsconfig import TLS, TLSFileError

DEFAULT_NAMESPACE = "default"
SWARM_VERSION = "v1.30"


class CloudError(KapaError):
    """A cloud API call (or the client's setup) failed; Kapacitor's words."""


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


def find_cluster(elements: Any, cluster: str, service: str, what: str = "cluster") -> Any:
    """The ``[[<service>]]`` element with id ``cluster`` (Kapacitor's service lookup)."""
    for element in elements or ():
        if element.id == cluster:
            if not element.enabled:
                raise CloudError("service is not enabled")
            return element
    raise CloudError(f"unknown {service} {what} {go_quote(cluster)}, cannot get client")


def _verify(tls: TLS, setting: str) -> Any:
    try:
        return tls.verify()
    except TLSFileError as exc:
        raise CloudError(f"failed to read {setting} {go_quote(exc.path)}: {exc}") from None


#: Where a pod finds its service account (``in-cluster = true``).
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def k8s_client_config(config: Any) -> tuple[list[str], str, str]:
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

    def __init__(self, config: Any, http: httpx.AsyncClient | None = None) -> None:
        self.urls = _RoundRobin([])
        self.http = http
        self.ca_path = ""
        self.verify: Any = True
        self.update(config)

    def update(self, config: Any) -> None:
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


#: The fields of Docker's ServiceSpec and TaskSpec in the order Go writes them, and
#: whether Go leaves them out when empty (structs are always written).
_SPEC_FIELDS = (("Name", True), ("Labels", True), ("TaskTemplate", False), ("Mode", False),
                ("UpdateConfig", True), ("Networks", True), ("EndpointSpec", True))
_TASK_FIELDS = (("ContainerSpec", False), ("Resources", True), ("RestartPolicy", True),
                ("Placement", True), ("Networks", True), ("LogDriver", True),
                ("ForceUpdate", False))


def _go_struct(doc: Any, fields: tuple[tuple[str, bool], ...], zero: dict[str, Any]
               ) -> Struct:
    doc = doc if isinstance(doc, dict) else {}
    out = Struct()
    for name, omit_empty in fields:
        value = doc.get(name, zero.get(name))
        if omit_empty and value in (None, "", {}, [], 0):
            continue
        out[name] = value
    return out


def swarm_spec_body(spec: Any) -> str:
    """A service spec as Kapacitor's swarm client sends it back: Go's encoding of
    Docker's ServiceSpec (its fields, in its order, empty ones left out or zero)."""
    out = _go_struct(spec, _SPEC_FIELDS, {})
    out["TaskTemplate"] = _go_struct(out.get("TaskTemplate"), _TASK_FIELDS,
                                     {"ContainerSpec": {}, "ForceUpdate": 0})
    mode = out.get("Mode") if isinstance(out.get("Mode"), dict) else {}
    fixed = Struct()
    if isinstance(mode.get("Replicated"), dict):
        replicated = Struct()
        if mode["Replicated"].get("Replicas") is not None:
            replicated["Replicas"] = mode["Replicated"]["Replicas"]
        fixed["Replicated"] = replicated
    if mode.get("Global") is not None:
        fixed["Global"] = {}
    out["Mode"] = fixed
    return dumps(out) + "\n"


def swarm_tls_check(config: Any) -> None:
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

    def __init__(self, config: Any, http: httpx.AsyncClient | None = None) -> None:
        swarm_tls_check(config)
        self.urls = _RoundRobin(list(config.servers))
        self.http = http
        self.tls = TLS.of(config)
        self.verify: Any = _verify(self.tls, "ssl files")

    def update(self, config: Any) -> None:
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
        return doc if isinstance(doc, dict) else {}

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
        version = _int((service.get("Version") or {}).get("Index", 0))
        sid = str(service.get("ID", ""))
        await self._request("POST", f"/{SWARM_VERSION}/services/{sid}/update?version={version}",
                            content=swarm_spec_body(service.get("Spec")).encode())
