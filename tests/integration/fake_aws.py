"""A local HTTP server answering as AWS documents EC2 ``DescribeInstances`` (paginated
with ``NextToken``), Auto Scaling ``DescribeAutoScalingGroups``/``SetDesiredCapacity``
(Query APIs, XML answers) and the instance metadata service (IMDSv2 token, role
credentials).

Every Query request is recorded with its form parameters, the service named in its
credential scope and whether its SigV4 ``Authorization`` is valid for the known test
credentials. The check is written here from the documented algorithm, apart from the
code under test.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ROLE_KEY = "ASIAROLEEXAMPLE"
ROLE_SECRET = "roleSecretExample/abc+def"
ROLE_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLETOKEN=="
IMDS_TOKEN = "imds-session-token-1"

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
AS_NS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
ACTIONS = {"DescribeInstances": ("ec2", "2016-11-15"),
           "DescribeAutoScalingGroups": ("autoscaling", "2011-01-01"),
           "SetDesiredCapacity": ("autoscaling", "2011-01-01")}


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    service: str  # from the credential scope
    access_key: str
    signed_headers: str
    valid: bool
    token: str  # X-Amz-Security-Token
    content_type: str


def verify_sigv4(method: str, path: str, headers: dict[str, str], body: bytes,
                 secrets: dict[str, str]) -> tuple[bool, str, str, str]:
    """(valid, access key, service, signed header names) of a request's Authorization."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False, "", "", ""
    parts = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key, date, region, service, terminal = parts["Credential"].split("/")
    signed = parts["SignedHeaders"]
    canonical_headers = "".join(f"{name}:{' '.join(headers.get(name, '').split())}\n"
                                for name in signed.split(";"))
    raw_path, _, query = path.partition("?")
    canonical_query = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                      for k, v in parse_qsl(query, keep_blank_values=True)))
    request = "\n".join([method, raw_path, canonical_query, canonical_headers, signed,
                         hashlib.sha256(body).hexdigest()])
    stamp = headers.get("x-amz-date", "")
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, f"{date}/{region}/{service}/{terminal}",
                         hashlib.sha256(request.encode()).hexdigest()])
    k = ("AWS4" + secrets.get(key, "?")).encode()
    for part in (date, region, service, terminal):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    ok = (hmac.compare_digest(want, parts["Signature"]) and stamp.startswith(date)
          and "host" in signed.split(";") and "x-amz-date" in signed.split(";"))
    return ok, key, service, signed


def instance_xml(iid: str, private_ip: str | None, *, state: str = "running",
                 itype: str = "t2.micro", zone: str = "us-east-1a",
                 public_ip: str | None = None, public_dns: str = "",
                 vpc: str | None = None, subnets: tuple[str, ...] = (),
                 tags: tuple[tuple[str, str], ...] = ()) -> str:
    """One instancesSet item as EC2 answers it."""
    parts = [f"<instanceId>{iid}</instanceId><imageId>ami-1</imageId>",
             f"<instanceState><code>16</code><name>{state}</name></instanceState>",
             f"<privateDnsName>ip-{iid}.ec2.internal</privateDnsName>",
             f"<dnsName>{public_dns}</dnsName>" if public_ip else "<dnsName/>",
             f"<instanceType>{itype}</instanceType>",
             f"<placement><availabilityZone>{zone}</availabilityZone><tenancy>default"
             "</tenancy></placement>"]
    if private_ip is not None:
        parts.append(f"<privateIpAddress>{private_ip}</privateIpAddress>")
    if public_ip is not None:
        parts.append(f"<ipAddress>{public_ip}</ipAddress>")
    if vpc is not None:
        parts.append(f"<vpcId>{vpc}</vpcId>")
        if subnets:
            parts.append(f"<subnetId>{subnets[0]}</subnetId>")
    parts.append("<networkInterfaceSet>" + "".join(
        f"<item><networkInterfaceId>eni-{i}</networkInterfaceId><subnetId>{s}</subnetId>"
        "</item>" for i, s in enumerate(subnets)) + "</networkInterfaceSet>")
    if tags:
        parts.append("<tagSet>" + "".join(f"<item><key>{k}</key><value>{v}</value></item>"
                                          for k, v in tags) + "</tagSet>")
    return "<item>" + "".join(parts) + "</item>"


def describe_instances_xml(reservations: list[list[str]], next_token: str = "") -> str:
    body = "".join(f"<item><reservationId>r-{i}</reservationId><ownerId>123</ownerId>"
                   f"<groupSet/><instancesSet>{''.join(insts)}</instancesSet></item>"
                   for i, insts in enumerate(reservations))
    token = f"<nextToken>{next_token}</nextToken>" if next_token else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse '
            f'xmlns="{EC2_NS}"><requestId>req-ec2</requestId><reservationSet>{body}'
            f"</reservationSet>{token}</DescribeInstancesResponse>")


@dataclass
class FakeAWS:
    """The server; ``pages`` maps a NextToken ("" first) to a DescribeInstances answer,
    ``groups`` Auto Scaling group names to their desired capacity, ``failing`` group
    names to an (HTTP status, error code, message) SetDesiredCapacity answers with."""

    pages: dict[str, str] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    failing: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=lambda: {ACCESS_KEY: SECRET_KEY,
                                                             ROLE_KEY: ROLE_SECRET})
    role: str = "kapa-role"
    imdsv2: bool = True
    requests: list[Recorded] = field(default_factory=list)
    metadata_requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, code: int, body: str, ctype: str = "text/xml;charset=UTF-8"
                      ) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("x-amzn-RequestId", "hdr-req-id")
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_PUT(self) -> None:  # noqa: N802
                self._body()
                with fake.lock:
                    fake.metadata_requests.append(
                        f"PUT {self.path} ttl={self.headers.get('X-aws-ec2-metadata-token-ttl-seconds')}")
                if self.path == "/latest/api/token" and fake.imdsv2:
                    self._send(200, IMDS_TOKEN, "text/plain")
                else:
                    self._send(403 if self.path == "/latest/api/token" else 404, "", "text/plain")

            def do_GET(self) -> None:  # noqa: N802
                token = self.headers.get("X-aws-ec2-metadata-token", "")
                with fake.lock:
                    fake.metadata_requests.append(f"GET {self.path} token={token}")
                if fake.imdsv2 and token != IMDS_TOKEN:
                    self._send(401, "", "text/plain")
                    return
                prefix = "/latest/meta-data/iam/security-credentials/"
                if self.path == prefix:
                    self._send(200, fake.role + "\n", "text/plain")
                elif self.path == prefix + fake.role:
                    self._send(200, json.dumps({
                        "Code": "Success", "LastUpdated": "2026-01-01T00:00:00Z",
                        "Type": "AWS-HMAC", "AccessKeyId": ROLE_KEY,
                        "SecretAccessKey": ROLE_SECRET, "Token": ROLE_TOKEN,
                        "Expiration": "2099-01-01T00:00:00Z"}), "text/plain")
                else:
                    self._send(404, "", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                valid, key, service, signed = verify_sigv4("POST", self.path, headers, body,
                                                           fake.secrets)
                params = dict(parse_qsl(body.decode(), keep_blank_values=True))
                with fake.lock:
                    fake.requests.append(Recorded(
                        "POST", self.path, params, service, key, signed, valid,
                        headers.get("x-amz-security-token", ""),
                        headers.get("content-type", "")))
                action = params.get("Action", "")
                if not valid:
                    self._send(401 if service == "ec2" else 403, fake.error(
                        service, "AuthFailure" if service == "ec2" else "SignatureDoesNotMatch",
                        "The request signature we calculated does not match the "
                        "signature you provided."))
                    return
                if ACTIONS.get(action, ("", ""))[0] != service or \
                        params.get("Version") != ACTIONS[action][1]:
                    self._send(400, fake.error(service, "InvalidAction",
                                               f"bad action {action}"))
                    return
                self._send(*fake.answer(action, params))

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.thread = threading.Thread(target=self.http.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment variables pointing the AWS clients here."""
        return {"AWS_ENDPOINT_URL_EC2": self.url, "AWS_ENDPOINT_URL_AUTO_SCALING": self.url,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.url}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()

    def __enter__(self) -> FakeAWS:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def error(service: str, code: str, message: str) -> str:
        if service == "ec2":
            return (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}"
                    "</Message></Error></Errors><RequestID>ec2-err-1</RequestID></Response>")
        return (f'<ErrorResponse xmlns="{AS_NS}"><Error><Type>Sender</Type><Code>{code}'
                f"</Code><Message>{message}</Message></Error><RequestId>as-err-1</RequestId>"
                "</ErrorResponse>")

    def answer(self, action: str, params: dict[str, str]) -> tuple[int, str]:
        with self.lock:
            if action == "DescribeInstances":
                page = self.pages.get(params.get("NextToken", ""))
                if page is None:
                    return 400, self.error("ec2", "InvalidParameterValue", "bad token")
                return 200, page
            if action == "DescribeAutoScalingGroups":
                name = params.get("AutoScalingGroupNames.member.1", "")
                members = "" if name not in self.groups else (
                    f"<member><AutoScalingGroupName>{name}</AutoScalingGroupName>"
                    "<MinSize>0</MinSize><MaxSize>100</MaxSize>"
                    f"<DesiredCapacity>{self.groups[name]}</DesiredCapacity>"
                    "<DefaultCooldown>300</DefaultCooldown></member>")
                return 200, (f'<DescribeAutoScalingGroupsResponse xmlns="{AS_NS}">'
                             f"<DescribeAutoScalingGroupsResult><AutoScalingGroups>{members}"
                             "</AutoScalingGroups></DescribeAutoScalingGroupsResult>"
                             "<ResponseMetadata><RequestId>as-req</RequestId>"
                             "</ResponseMetadata></DescribeAutoScalingGroupsResponse>")
            name = params.get("AutoScalingGroupName", "")
            if name in self.failing:
                status, code, message = self.failing[name]
                return status, self.error("autoscaling", code, message)
            if name not in self.groups:
                return 400, self.error("autoscaling", "ValidationError",
                                       "AutoScalingGroup name not found - null")
            self.groups[name] = int(params["DesiredCapacity"])
            return 200, (f'<SetDesiredCapacityResponse xmlns="{AS_NS}"><ResponseMetadata>'
                         "<RequestId>as-set</RequestId></ResponseMetadata>"
                         "</SetDesiredCapacityResponse>")

    def calls(self) -> list[str]:
        """The Query requests as ``service Action k=v...`` lines (Action and Version
        checked by the server), in order."""
        with self.lock:
            return [" ".join([r.service, *(f"{k}={v}" for k, v in sorted(r.params.items())
                                           if k != "Version")])
                    for r in self.requests]


# -- pointing kapacitord at FakeAWS (to regenerate expected data) -----------------------
# Kapacitor 1.5.7's AWS SDK has no endpoint override (and its requests ignore
# HTTPS_PROXY), so kapacitord runs in a mount namespace of its own whose /etc/hosts names
# 127.0.0.2 for the AWS hosts; a TLS relay there on port 443 answers with a certificate of
# a throw-away CA (trusted through SSL_CERT_FILE) and passes the requests on to FakeAWS.
# This needs root (unshare, port 443).

AWS_HOSTS = ("ec2.us-east-1.amazonaws.com", "autoscaling.us-east-1.amazonaws.com")
RELAY_ADDRESS = ("127.0.0.2", 443)
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def make_certificates(directory: str) -> tuple[str, str, str]:
    """(CA file, server certificate, server key) for AWS_HOSTS, made with openssl."""
    import subprocess
    from pathlib import Path

    d = Path(directory)

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-subj", "/CN=kapa test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "srv.key"),
        "-out", str(d / "srv.csr"), "-subj", "/CN=amazonaws.com")
    (d / "ext").write_text("subjectAltName=" + ",".join(f"DNS:{h}" for h in AWS_HOSTS) +
                           "\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(d / "srv.csr"), "-CA", str(d / "ca.pem"),
        "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "2",
        "-out", str(d / "srv.pem"), "-extfile", str(d / "ext"))
    return str(d / "ca.pem"), str(d / "srv.pem"), str(d / "srv.key")


def namespaced_binary(directory: str, binary: str, ca: str) -> str:
    """A script that runs ``binary`` with its arguments in a mount namespace whose
    /etc/hosts sends AWS_HOSTS to the relay and whose system CA bundle also holds
    ``ca`` (Kapacitor's AWS client ignores SSL_CERT_FILE)."""
    import os
    import stat

    hosts = os.path.join(directory, "hosts")
    with open("/etc/hosts", encoding="utf-8") as f:
        base = f.read()
    with open(hosts, "w", encoding="utf-8") as f:
        f.write(base + "".join(f"\n{RELAY_ADDRESS[0]} {h}" for h in AWS_HOSTS) + "\n")
    bundle = os.path.join(directory, "ca-certificates.crt")
    with open(SYSTEM_BUNDLE, encoding="utf-8") as f, open(ca, encoding="utf-8") as g, \
            open(bundle, "w", encoding="utf-8") as out:
        out.write(f.read() + "\n" + g.read())
    script = os.path.join(directory, "kapacitord-ns")
    with open(script, "w", encoding="utf-8") as f:
        f.write("#!/bin/sh\nexec unshare -m --propagation private sh -c "
                "'mount --bind \"$0\" /etc/hosts && mount --bind \"$1\" "
                f"{SYSTEM_BUNDLE} && shift && exec \"$@\"' "
                f"'{hosts}' '{bundle}' '{binary}' \"$@\"\n")
    os.chmod(script, stat.S_IRWXU)
    return script


class TLSRelay:
    """Ends TLS at ``address`` and relays each HTTP request to ``upstream`` (host,
    port) in plain HTTP, keeping its Host header."""

    def __init__(self, address: tuple[str, int], upstream: tuple[str, int], cert: str,
                 key: str) -> None:
        import socket
        import ssl

        self.upstream = upstream
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.sock = socket.create_server(address)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Any) -> None:
        import http.client

        try:
            tls = self.tls.wrap_socket(conn, server_side=True)
            reader = tls.makefile("rb")
            while True:
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers = []
                while (h := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = h.decode().partition(":")
                    headers.append((name.strip(), value.strip()))
                length = int(next((v for n, v in headers if n.lower() == "content-length"),
                                  "0"))
                body = reader.read(length) if length else b""
                up = http.client.HTTPConnection(*self.upstream, timeout=30)
                up.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    up.putheader(name, value)
                up.endheaders(body)
                answer = up.getresponse()
                data = answer.read()
                out = [f"HTTP/1.1 {answer.status} {answer.reason}\r\n".encode()]
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection",
                                            "transfer-encoding"):
                        out.append(f"{name}: {value}\r\n".encode())
                out.append(f"Content-Length: {len(data)}\r\n\r\n".encode())
                tls.sendall(b"".join(out) + data)
                up.close()
        except (OSError, ValueError):
            return
        finally:
            conn.close()
