"""The server as a whole: ``level``, ``stats``, ``version``, ``vars``, ``service-tests``
and the ``service-tests`` kind of ``list``.
"""

from __future__ import annotations

import sys
from typing import Any

from kapa_core import KAPACITOR_COMPAT_VERSION, __version__
from kapa_core.cli.kapa.api import BASE
from kapa_core.cli.kapa.output import go_sprintf, width
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry

__all__ = ["register"]

LEVEL_USAGE = """Usage: kapacitor level (debug|info|error)

	Sets the logging level on the kapacitord server.
"""
STATS_USAGE = """Usage: kapacitor stats <general|ingress>

	Print stats about a certain aspect of Kapacitor.

	general - Display summary stats about Kapacitor.
	ingress - Display stats about the data Kapacitor is receiving by database, retention policy and measurement.
"""
VERSION_USAGE = """Usage: kapacitor version

	Print version info.
"""
VARS_USAGE = """Usage: kapacitor vars

	Print debug vars in JSON format.
"""
SERVICE_TESTS_USAGE = """Usage: kapacitor service-tests <service name...>

	Perform the service test using defaults.
	The service name can be a glob style pattern.
"""


def _printer(text: str) -> Any:
    def show() -> None:
        sys.stderr.write(text + "\n")
    return show


def do_level(ctx: Context, args: list[str]) -> None:
    if not args:
        sys.stderr.write("Must pass a log level\n")
        _printer(LEVEL_USAGE)()
        raise SystemExit(2)
    ctx.client.post(BASE + "/loglevel", {"level": args[0]}, codes=(204,))


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value)


def do_stats(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        _printer(STATS_USAGE)()
        raise CommandError("must provide a stats category")
    debug = ctx.client.get(BASE + "/debug/vars")
    if not isinstance(debug, dict):
        debug = {}
    if args[0] == "general":
        rows = [("ClusterID:", str(debug.get("cluster_id", "")), "s"),
                ("ServerID:", str(debug.get("server_id", "")), "s"),
                ("Host:", str(debug.get("host", "")), "s"),
                ("Tasks:", _int(debug.get("num_tasks")), "d"),
                ("Enabled Tasks:", _int(debug.get("num_enabled_tasks")), "d"),
                ("Subscriptions:", _int(debug.get("num_subscriptions")), "d"),
                ("Platform:", str(debug.get("platform", "")), "s"),
                ("Version:", str(debug.get("version", "")), "s")]
        if ctx.json_output:
            ctx.print_json({k: debug.get(k) for k in (
                "cluster_id", "server_id", "host", "num_tasks", "num_enabled_tasks",
                "num_subscriptions", "platform", "version")})
            return
        ctx.write("".join(go_sprintf(f"%-30s%-30{verb}\n", label, value)
                          for label, value, verb in rows))
    elif args[0] == "ingress":
        stats = debug.get("kapacitor") or {}
        entries: list[tuple[str, str, str, int]] = []
        for stat in stats.values() if isinstance(stats, dict) else ():
            if not isinstance(stat, dict):
                continue
            tags = stat.get("tags") or {}
            if stat.get("name") != "ingress" or tags.get("task_master") != "main":
                continue
            values = stat.get("values") or {}
            received = values.get("points_received")
            entries.append((str(tags.get("database", "")),
                            str(tags.get("retention_policy", "")),
                            str(tags.get("measurement", "")),
                            _int(received)))
        entries.sort(key=lambda e: (e[0].encode(), e[1].encode(), e[2].encode()))
        if ctx.json_output:
            ctx.print_json([{"database": e[0], "retention_policy": e[1],
                             "measurement": e[2], "points_received": e[3]}
                            for e in entries])
            return
        max_db = max([8] + [width(e[0]) for e in entries]) + 1
        max_rp = max([16] + [width(e[1]) for e in entries]) + 1
        max_m = max([11] + [width(e[2]) for e in entries]) + 1
        out = [go_sprintf(f"%-{max_db}s%-{max_rp}s%-{max_m}s%s\n", "Database",
                          "Retention Policy", "Measurement", "Points Received")]
        out.extend(go_sprintf(f"%-{max_db}s%-{max_rp}s%-{max_m}s%15d\n", *e)
                   for e in entries)
        ctx.write("".join(out))


def do_version(ctx: Context, args: list[str]) -> None:
    # Kapacitor prints "Kapacitor <platform> <version> (git: <branch> <commit>)".
    ctx.write(f"Kapacitor OSS {KAPACITOR_COMPAT_VERSION} (git: kapa-core {__version__})\n")


def do_vars(ctx: Context, args: list[str]) -> None:
    # As Kapacitor's client: the answer's body is printed whatever its status.
    response = ctx.client.request("GET", BASE + "/debug/vars",
                                  codes=range(100, 600))
    sys.stdout.flush()
    out = getattr(ctx.stdout, "buffer", None)
    if out is not None:
        ctx.stdout.flush()
        out.write(response.content)
        out.flush()
    else:
        ctx.write(response.content.decode("utf-8", "replace"))


def _service_tests(ctx: Context, pattern: str) -> list[dict[str, Any]]:
    answer = ctx.client.get(BASE + "/service-tests", {"pattern": pattern or "*"})
    services = answer.get("services") if isinstance(answer, dict) else None
    return [s for s in services or [] if isinstance(s, dict)]


def do_service_tests(ctx: Context, args: list[str]) -> None:
    if not args:
        raise CommandError("must provide at least one service name or pattern.")
    services: list[dict[str, Any]] = []
    for pattern in args:
        services.extend(_service_tests(ctx, pattern))
    results = []
    for service in services:
        link = service.get("link")
        href = link.get("href", "") if isinstance(link, dict) else ""
        if not href:
            raise CommandError("invalid link { }")
        result = ctx.client.post(str(href), raw=b"null\n")
        results.append(result if isinstance(result, dict) else {})
    if ctx.json_output:
        ctx.print_json([{"service": s.get("name", ""), **r}
                        for s, r in zip(services, results)])
        return
    fmt = "%-20s%-10v%s\n"
    out = [go_sprintf(fmt, "Service", "Success", "Message")]
    for service, result in zip(services, results):
        out.append(go_sprintf(fmt, service.get("name", ""), bool(result.get("success")),
                              str(result.get("message", ""))))
    ctx.write("".join(out))


def list_service_tests_kind(ctx: Context, patterns: list[str]) -> None:
    if ctx.json_output:
        objects: list[dict[str, Any]] = []
        for pattern in patterns:
            objects.extend(_service_tests(ctx, pattern))
        ctx.print_json(objects)
        return
    # As kapacitor: the header first, then each pattern's names as they come.
    ctx.write("Service Name\n")
    for pattern in patterns:
        ctx.write("".join(f"{service.get('name', '')}\n"
                          for service in _service_tests(ctx, pattern)))


def register(registry: Registry) -> None:
    registry.add(Command("level", do_level, _printer(LEVEL_USAGE)))
    registry.add(Command("stats", do_stats, _printer(STATS_USAGE), json=True))
    registry.add(Command("version", do_version, _printer(VERSION_USAGE)))
    registry.add(Command("vars", do_vars, _printer(VARS_USAGE)))
    # Kapacitor's "help service-tests" prints the help of "vars"; kept as it is.
    registry.add(Command("service-tests", do_service_tests, _printer(SERVICE_TESTS_USAGE),
                         help=_printer(VARS_USAGE), json=True))
    registry.add_kind("list", "service-tests", list_service_tests_kind)

