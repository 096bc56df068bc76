"""The AWS APIs kapa-core calls, as Kapacitor 1.5.7's AWS SDK (aws-sdk-go 1.8) calls them:
EC2 ``DescribeInstances`` (API 2016-11-15, for ``[[ec2]]`` discovery) and Auto Scaling
``DescribeAutoScalingGroups``/``SetDesiredCapacity`` (API 2011-01-01, for
``|ec2Autoscale()``), both Query APIs: a form-encoded POST signed with Signature Version
4, an XML answer.

Credentials (:class:`CredentialChain`) are looked up as the SDK's chain does: the
section's ``access-key``/``secret-key``; else ``AWS_ACCESS_KEY_ID`` (or
``AWS_ACCESS_KEY``), ``AWS_SECRET_ACCESS_KEY`` (or ``AWS_SECRET_KEY``) and
``AWS_SESSION_TOKEN``; else the shared credentials file (``AWS_SHARED_CREDENTIALS_FILE``,
else ``~/.aws/credentials``; the section's ``profile``, else ``AWS_PROFILE``, else
``default``); else the instance's role from the EC2 instance metadata service (an IMDSv2
session token first, IMDSv1 when the service refuses it; ``AWS_EC2_METADATA_SERVICE_ENDPOINT``
names another address, ``AWS_EC2_METADATA_DISABLED=true`` skips it).

Endpoints are ``https://<service>.<region>.amazonaws.com`` (``.com.cn`` in the China
regions) unless the SDKs' own variables name another: ``AWS_ENDPOINT_URL_EC2`` or
``AWS_ENDPOINT_URL_AUTO_SCALING``, else ``AWS_ENDPOINT_URL``
(``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` ignores them). ``AWS_CA_BUNDLE`` names a
CA file to trust instead of the system's.

Errors are :class:`AWSError` worded as the SDK words them (``Code: message`` and the
status code and request id of a refused request).
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import os
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx
import trio

from kapa_core.cloud import CloudError, go_http_error, go_quote
from kapa_core.errors import KapaError
from kapa_core.tlsconfig import TLS, TLSFileError

EC2_VERSION = "2016-11-15"
AUTOSCALING_VERSION = "2011-01-01"
#: the SDK's retries of a throttled, failed (5xx) or unsent request
MAX_RETRIES = 3
#: seconds one metadata-service request may take
METADATA_TIMEOUT = 2.0
METADATA_ENDPOINT = "http://169.254.169.254"
#: refresh role credentials this long before they expire (as the SDK)
EXPIRY_WINDOW = 300.0
USER_AGENT = "kapa-core (aws query client)"

_THROTTLE = {"Throttling", "ThrottlingException", "ThrottledException",
             "RequestThrottledException", "TooManyRequestsException",
             "ProvisionedThroughputExceededException", "RequestLimitExceeded",
             "RequestThrottled", "PriorRequestNotComplete"}


class AWSError(CloudError):
    """An AWS API call failed: ``code``, ``message``, and for an answered request its
    HTTP ``status`` and ``request_id`` (str() as the Go SDK words it)."""

    def __init__(self, code: str, message: str, status: int = 0, request_id: str = "",
                 cause: str = "") -> None:
        text = f"{code}: {message}"
        if status:
            text += f"\n\tstatus code: {status}, request id: {request_id}"
        if cause:
            text += f"\ncaused by: {cause}"
        super().__init__(text)
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id


# -- Signature Version 4 -----------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri_encode(text: str, safe: str = "") -> str:
    return quote(text, safe="-_.~" + safe)


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The day's key: HMACs of the date, region, service and ``aws4_request``."""
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def canonical_request(method: str, path: str, query: Sequence[tuple[str, str]],
                      headers: Mapping[str, str], payload_hash: str) -> tuple[str, str]:
    """(canonical request, signed header names) of a request; ``headers`` are the ones
    to sign (names in any case), ``path`` not yet encoded."""
    canonical_path = _uri_encode(path or "/", "/")
    canonical_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}"
                               for k, v in sorted((k, v) for k, v in query))
    normal = sorted((name.lower(), " ".join(value.strip().split()))
                    for name, value in headers.items())
    signed = ";".join(name for name, _ in normal)
    lines = "".join(f"{name}:{value}\n" for name, value in normal)
    return "\n".join([method.upper(), canonical_path, canonical_query, lines, signed,
                      payload_hash]), signed


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str = ""
    #: wall-clock time (s) after which they must be fetched again; 0: never
    expires: float = 0.0


def sign(method: str, url: str, headers: Mapping[str, str], body: bytes,
         credentials: Credentials, region: str, service: str,
         now: datetime.datetime | None = None) -> dict[str, str]:
    """``headers`` with ``X-Amz-Date``, ``X-Amz-Security-Token`` (temporary credentials)
    and the SigV4 ``Authorization`` added; every given header and ``Host`` is signed."""
    now = now or datetime.datetime.now(datetime.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    u = httpx.URL(url)
    out = {k: v for k, v in headers.items() if k.lower() not in ("authorization",)}
    if not any(k.lower() == "host" for k in out):
        default_port = {"http": 80, "https": 443}.get(u.scheme)
        out["Host"] = u.host if u.port in (None, default_port) else f"{u.host}:{u.port}"
    out["X-Amz-Date"] = stamp
    if credentials.token:
        out["X-Amz-Security-Token"] = credentials.token
    query = [(k, v) for k, v in u.params.multi_items()]
    request, signed = canonical_request(method, u.path, query, out, _sha256(body))
    scope = f"{stamp[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, _sha256(request.encode())])
    signature = hmac.new(signing_key(credentials.secret_key, stamp[:8], region, service),
                         to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                            f"SignedHeaders={signed}, Signature={signature}")
    return out


# -- credentials -------------------------------------------------------------------------

class AWSSettings(Protocol):
    """What the AWS clients read of an ``[[ec2]]`` element."""

    @property
    def region(self) -> str: ...

    @property
    def access_key(self) -> str: ...

    @property
    def secret_key(self) -> str: ...

    @property
    def profile(self) -> str: ...


NO_CREDENTIALS = ("NoCredentialProviders", "no valid providers in chain. Deprecated.\n\t"
                  "For verbose messaging see aws.Config.CredentialsChainVerboseErrors")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "t", "true", "yes")


class CredentialChain:
    """The SDK's credential chain for one ``[[ec2]]`` element (see the module docs).
    ``env`` defaults to the process environment."""

    def __init__(self, access_key: str = "", secret_key: str = "", profile: str = "",
                 env: Mapping[str, str] | None = None) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.profile = profile
        self.env = os.environ if env is None else env
        self._cached: Credentials | None = None

    def _static(self) -> Credentials | None:
        if self.access_key or self.secret_key:
            return Credentials(self.access_key, self.secret_key)
        return None

    def _environment(self) -> Credentials | None:
        env = self.env
        key = env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY") or ""
        secret = env.get("AWS_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_KEY") or ""
        if key and secret:
            return Credentials(key, secret, env.get("AWS_SESSION_TOKEN", ""))
        return None

    def shared_file(self) -> str:
        path = self.env.get("AWS_SHARED_CREDENTIALS_FILE", "")
        if path:
            return path
        home = self.env.get("HOME") or self.env.get("USERPROFILE") or ""
        return os.path.join(home, ".aws", "credentials") if home else ""

    def _shared(self) -> Credentials | None:
        path = self.shared_file()
        profile = self.profile or self.env.get("AWS_PROFILE") or "default"
        if not path:
            return None
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as f:
                parser.read_file(f)
        except (OSError, configparser.Error, UnicodeDecodeError):
            return None
        if not parser.has_section(profile):
            return None
        section = parser[profile]
        key = section.get("aws_access_key_id", "").strip()
        secret = section.get("aws_secret_access_key", "").strip()
        if not key or not secret:
            return None
        return Credentials(key, secret, section.get("aws_session_token", "").strip())

    async def _instance_role(self, http: httpx.AsyncClient) -> Credentials | None:
        if _truthy(self.env.get("AWS_EC2_METADATA_DISABLED")):
            return None
        base = (self.env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or METADATA_ENDPOINT
                ).rstrip("/")
        headers: dict[str, str] = {}
        try:
            with trio.fail_after(METADATA_TIMEOUT * 3):
                answer = await http.put(
                    f"{base}/latest/api/token", timeout=METADATA_TIMEOUT,
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
                if answer.status_code == 200 and answer.text:
                    headers["X-aws-ec2-metadata-token"] = answer.text.strip()
                elif answer.status_code not in (403, 404, 405):
                    return None  # neither IMDSv2 nor IMDSv1 (which refuses PUT)
                roles = await http.get(f"{base}/latest/meta-data/iam/security-credentials/",
                                       headers=headers, timeout=METADATA_TIMEOUT)
                role = roles.text.strip().splitlines()[0].strip() if \
                    roles.status_code == 200 and roles.text.strip() else ""
                if not role:
                    return None
                doc = await http.get(
                    f"{base}/latest/meta-data/iam/security-credentials/{quote(role)}",
                    headers=headers, timeout=METADATA_TIMEOUT)
        except (httpx.HTTPError, trio.TooSlowError):
            return None
        try:
            creds = doc.json()
        except ValueError:
            return None
        if doc.status_code != 200 or not isinstance(creds, dict) or \
                creds.get("Code", "Success") != "Success":
            return None
        expires = 0.0
        try:
            when = datetime.datetime.fromisoformat(str(creds.get("Expiration", "")))
            expires = when.timestamp() - EXPIRY_WINDOW
        except ValueError:
            pass
        key, secret = str(creds.get("AccessKeyId", "")), str(creds.get("SecretAccessKey", ""))
        if not key or not secret:
            return None
        return Credentials(key, secret, str(creds.get("Token", "")), expires or
                           time.time() + 3600)

    async def get(self, http: httpx.AsyncClient) -> Credentials:
        """The first credentials the chain finds; AWSError (NoCredentialProviders)
        when none does. Role credentials are kept until shortly before they expire."""
        cached = self._cached
        if cached is not None and (not cached.expires or cached.expires > time.time()):
            return cached
        found = self._static() or self._environment() or self._shared() or \
            await self._instance_role(http)
        if found is None:
            raise AWSError(*NO_CREDENTIALS)
        self._cached = found if found.expires else None
        return found


# -- endpoints ---------------------------------------------------------------------------

#: service -> (endpoint prefix, the suffix of AWS_ENDPOINT_URL_<suffix>)
SERVICES = {"ec2": ("ec2", "EC2"), "autoscaling": ("autoscaling", "AUTO_SCALING")}


def endpoint(service: str, region: str, env: Mapping[str, str] | None = None) -> str:
    """The endpoint of ``service`` ("ec2", "autoscaling") in ``region``."""
    env = os.environ if env is None else env
    prefix, suffix = SERVICES[service]
    if not _truthy(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")):
        configured = env.get(f"AWS_ENDPOINT_URL_{suffix}") or env.get("AWS_ENDPOINT_URL")
        if configured:
            return configured.rstrip("/")
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{prefix}.{region}.{domain}"


def ca_bundle_tls(env: Mapping[str, str] | None = None) -> TLS:
    """The TLS settings of AWS requests: ``AWS_CA_BUNDLE`` when set."""
    env = os.environ if env is None else env
    return TLS(ca=env.get("AWS_CA_BUNDLE", ""))


# -- the Query protocol ------------------------------------------------------------------

def local(tag: str) -> str:
    """An element's name without its XML namespace."""
    return tag.rpartition("}")[2]


def child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    for sub in element:
        if local(sub.tag) == name:
            return sub
    return None


def text(element: ET.Element | None, *path: str) -> str | None:
    """The text at ``path`` below ``element``; None when an element is absent (a present
    empty one is ``""``, as the SDK decodes it)."""
    for name in path:
        element = child(element, name)
    if element is None:
        return None
    return element.text or ""


def items(element: ET.Element | None, *path: str) -> Iterator[ET.Element]:
    """The members of the list at ``path`` (``item`` or ``member`` elements)."""
    for name in path:
        element = child(element, name)
    for sub in element if element is not None else ():
        if local(sub.tag) in ("item", "member"):
            yield sub


def _parse_error(body: bytes, status: int, header_id: str) -> AWSError:
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        return AWSError("SerializationError", "failed to decode query XML error response",
                        cause=str(exc))
    if local(root.tag) == "Response":  # the EC2 protocol
        error = child(child(root, "Errors"), "Error")
        code = text(error, "Code") or ""
        message = text(error, "Message") or ""
        return AWSError(code, message, status, text(root, "RequestID") or "")
    if local(root.tag) == "ErrorResponse":
        return AWSError(text(root, "Error", "Code") or "", text(root, "Error", "Message")
                        or "", status, text(root, "RequestId") or header_id)
    return AWSError("SerializationError", "failed to decode query XML error response",
                    cause="expected element type <ErrorResponse> but have "
                          f"<{local(root.tag)}>")


class QueryClient:
    """Signed Query-API calls to one AWS service in one region."""

    def __init__(self, service: str, version: str, config: AWSSettings,
                 http: httpx.AsyncClient | None = None,
                 env: Mapping[str, str] | None = None,
                 check_outgoing: Callable[[str], None] | None = None) -> None:
        self.service = service
        self.version = version
        self.env = os.environ if env is None else env
        self.http = http
        self.check_outgoing = check_outgoing
        self.tls = ca_bundle_tls(self.env)
        try:
            self.verify: Any = self.tls.verify()
        except TLSFileError as exc:
            raise CloudError(f"failed to load AWS_CA_BUNDLE {go_quote(exc.path)}: {exc}"
                             ) from None
        self.update(config)

    def update(self, config: AWSSettings) -> None:
        """Follow a changed config element (region, keys, profile)."""
        self.region = config.region
        self.url = endpoint(self.service, config.region, self.env) + "/"
        self.credentials = CredentialChain(config.access_key, config.secret_key,
                                           config.profile, self.env)

    async def call(self, action: str, params: Sequence[tuple[str, str]] = ()) -> ET.Element:
        """POST ``Action``/``Version`` and ``params``; the parsed answer."""
        assert self.http is not None
        if self.check_outgoing is not None:
            try:
                self.check_outgoing(self.url)
            except KapaError as exc:  # the deny list refuses the endpoint
                raise AWSError("RequestError", "send request failed",
                               cause=str(exc)) from None
        body = urlencode(sorted([("Action", action), ("Version", self.version),
                                 *params])).encode()
        creds = await self.credentials.get(self.http)
        for attempt in range(MAX_RETRIES + 1):
            headers = sign("POST", self.url, {
                "Content-Length": str(len(body)),
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                body, creds, self.region, self.service)
            headers["User-Agent"] = USER_AGENT
            retry = attempt < MAX_RETRIES
            try:
                response = await self.http.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                if not retry:
                    raise AWSError("RequestError", "send request failed",
                                   cause=go_http_error("POST", self.url, exc)) from None
            else:
                if response.status_code < 300:
                    try:
                        return ET.fromstring(response.content)
                    except ET.ParseError as exc:
                        raise AWSError("SerializationError", "failed decoding Query response",
                                       cause=str(exc)) from None
                error = _parse_error(response.content, response.status_code,
                                     response.headers.get("x-amzn-requestid", ""))
                if not retry or not (response.status_code >= 500 or
                                     response.status_code == 429 or
                                     error.code in _THROTTLE):
                    raise error
            await trio.sleep(random.uniform(0.03, 0.06) * 2 ** attempt)
        raise AssertionError("unreachable")


# -- EC2 ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    """What EC2 discovery reads of a DescribeInstances instance (None: absent)."""

    id: str
    state: str | None
    type: str | None
    private_ip: str | None
    public_ip: str | None
    public_dns: str | None
    availability_zone: str | None
    vpc_id: str | None
    subnets: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]


def instances_of(page: ET.Element) -> Iterator[Instance]:
    for reservation in items(page, "reservationSet"):
        for inst in items(reservation, "instancesSet"):
            subnets: list[str] = []
            for eni in items(inst, "networkInterfaceSet"):
                subnet = text(eni, "subnetId") or ""
                if subnet not in subnets:
                    subnets.append(subnet)
            tags = tuple((text(t, "key") or "", text(t, "value") or "")
                         for t in items(inst, "tagSet"))
            yield Instance(text(inst, "instanceId") or "", text(inst, "instanceState", "name"),
                           text(inst, "instanceType"), text(inst, "privateIpAddress"),
                           text(inst, "ipAddress"), text(inst, "dnsName"),
                           text(inst, "placement", "availabilityZone"), text(inst, "vpcId"),
                           tuple(subnets), tags)


class EC2Client(QueryClient):
    """EC2's DescribeInstances, every page."""

    def __init__(self, config: AWSSettings, http: httpx.AsyncClient | None = None,
                 env: Mapping[str, str] | None = None,
                 check_outgoing: Callable[[str], None] | None = None) -> None:
        super().__init__("ec2", EC2_VERSION, config, http, env, check_outgoing)

    async def describe_instances(self) -> list[Instance]:
        found: list[Instance] = []
        token = ""
        seen: set[str] = set()
        while True:
            page = await self.call("DescribeInstances",
                                   [("NextToken", token)] if token else [])
            found.extend(instances_of(page))
            token = text(page, "nextToken") or ""
            if not token or token in seen:  # the last page (or a server going round)
                return found
            seen.add(token)


# -- Auto Scaling ------------------------------------------------------------------------

class AutoScalingClient(QueryClient):
    """Kapacitor's ec2 autoscale client: the desired capacity of an Auto Scaling group,
    read with DescribeAutoScalingGroups and set with SetDesiredCapacity (the group's own
    cooldown not honoured: the node has its own). Errors carry Kapacitor's words."""

    def __init__(self, config: AWSSettings, http: httpx.AsyncClient | None = None,
                 env: Mapping[str, str] | None = None,
                 check_outgoing: Callable[[str], None] | None = None) -> None:
        super().__init__("autoscaling", AUTOSCALING_VERSION, config, http, env,
                         check_outgoing)

    async def desired_capacity(self, group: str) -> int:
        """The last listed group's DesiredCapacity; 0 when no group has that name (as
        Kapacitor)."""
        try:
            answer = await self.call("DescribeAutoScalingGroups",
                                     [("AutoScalingGroupNames.member.1", group)])
        except AWSError as exc:
            what = go_quote(exc.code) if exc.code in ("InvalidNextToken",
                                                      "ResourceContention") else str(exc)
            raise CloudError(f"failed to get ec2 autoscaleGroup for {go_quote(group)}: "
                             f"failed to create GET request for {what}: {exc}") from None
        capacity = 0
        for member in items(child(answer, "DescribeAutoScalingGroupsResult"),
                            "AutoScalingGroups"):
            value = text(member, "DesiredCapacity")
            try:
                capacity = int(value or 0)
            except ValueError:
                raise CloudError(f"failed to get ec2 autoscaleGroup for {go_quote(group)}: "
                                 f"bad DesiredCapacity {value!r}") from None
        return capacity

    async def set_desired_capacity(self, group: str, capacity: int) -> None:
        try:
            await self.call("SetDesiredCapacity", [
                ("AutoScalingGroupName", group), ("DesiredCapacity", str(capacity)),
                ("HonorCooldown", "false")])
        except AWSError as exc:
            what = go_quote(exc.code) if exc.code in ("ScalingActivityInProgress",
                                                      "ResourceContention") else str(exc)
            raise CloudError(f"Failed to set desired capacity {what}: {exc}") from None

    # the autoscale node's client interface
    async def replicas(self, group: str) -> int:
        return await self.desired_capacity(group)

    async def set_replicas(self, group: str, replicas: int) -> None:
        await self.set_desired_capacity(group, replicas)
