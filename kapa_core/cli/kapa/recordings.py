"""Recordings, replays and backups: ``record stream|batch|query``, ``replay``,
``replay-live batch|query``, ``list``/``delete recordings|replays`` and ``backup``, as
the ``kapacitor`` 1.5.7 client runs them (``cmd/kapacitor/main.go``).

Without ``-no-wait``, ``record``, ``replay`` and ``replay-live`` ask for the recording or
replay every half second until it is no longer running, then print its ID (and fail
with its error if it failed). ``backup FILE`` writes the answer's body to FILE and fails
when fewer bytes arrived than its Content-Length announced.

Beyond ``kapacitor``: when stdout is a terminal, ``record``, ``replay``, ``replay-live``
and ``backup`` draw a one-line progress bar on stderr while they wait, from what the API
reports (the ``progress`` of the recording or replay, 0 to 1; the bytes received
against Content-Length). stdout stays exactly ``kapacitor``'s; nothing is drawn when
stdout is not a terminal.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TextIO

from kapa_core.cli.kapa.api import BASE, APIError
from kapa_core.cli.kapa.flags import BoolValue, FlagSet, StringValue, go_quote
from kapa_core.cli.kapa.output import go_sprintf, humanize_bytes, os_error, rfc822, width
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry

__all__ = ["ProgressBar", "parse_influxql_duration", "parse_rfc3339nano", "register"]

RECORDINGS = BASE + "/recordings"
REPLAYS = BASE + "/replays"
BACKUP = BASE + "/storage/backup"
LIMIT = 100
#: how often a waiting command asks again (the Go client's 500 ms)
POLL_SECONDS = 0.5
S = 1_000_000_000

RECORD_USAGE = """Usage: kapacitor record [batch|stream|query] [options]

	Record the result of a InfluxDB query or a snapshot of the live data stream.

	Prints the recording ID on exit.

	See 'kapacitor help replay' for how to replay a recording.
"""
RECORD_STREAM_USAGE = """Usage: kapacitor record stream [options]

	Record a snapshot of the live data stream.

	Prints the recording ID on exit.

	See 'kapacitor help replay' for how to replay a recording.

Examples:

	$ kapacitor record stream -task mem_free -duration 1m

		This records the live data stream for 1 minute using the databases and retention policies
		from the named task.

Options:
"""
RECORD_BATCH_USAGE = """Usage: kapacitor record batch [options]

	Record the result of a InfluxDB query from a task.

	Prints the recording ID on exit.

	See 'kapacitor help replay' for how to replay a recording.

Examples:

	$ kapacitor record batch -task cpu_idle -start 2015-09-01T00:00:00Z -stop 2015-09-02T00:00:00Z

		This records the result of the query defined in task 'cpu_idle' and runs the query
		until the queries reaches the stop time, starting at time 'start' and incrementing
		by the schedule defined in the task.

	$ kapacitor record batch -task cpu_idle -past 10h

		This records the result of the query defined in task 'cpu_idle' and runs the query
		until the queries reaches the present time.
		The starting time for the queries is 'now - 10h' and increments by the schedule defined in the task.

Options:
"""
RECORD_QUERY_USAGE = """Usage: kapacitor record query [options]

	Record the result of a InfluxDB query.

	Prints the recording ID on exit.

	Recordings have types like tasks. you must specify the desired type.

	See 'kapacitor help replay' for how to replay a recording.

Examples:

	$ kapacitor record query -query 'select value from "telegraf"."default"."cpu_idle" where time > now() - 1h and time < now()' -type stream

		This records the result of the query and stores it as a stream recording. Use '-type batch' to store as batch recording.

Options:
"""
REPLAY_USAGE = """Usage: kapacitor replay [options]

Replay a recording to a task. Prints the replay ID.

The times of the data points will either be relative to now or the exact times
in the recording if the '-rec-time' flag is set. In either case the relative times
between the data points remains the same.

See 'kapacitor help record' for how to create a replay.
See 'kapacitor help define' for how to create a task.

Options:
"""
REPLAY_LIVE_USAGE = """Usage: kapacitor replay-live <batch|query> [options]

Replay data to a task directly without saving a recording.

The command is a hybrid of the 'kapacitor record batch|query' and 'kapacitor replay' commands.

See either 'kapacitor replay-live batch' or 'kapacitor replay-live query' for more details
"""
REPLAY_LIVE_BATCH_USAGE = """Usage: kapacitor replay-live batch [options]

Replay data from the queries in a batch task against the task.

This is similar to 'kapacitor record batch ...' but without saving a recording.

Examples:

	$ kapacitor replay-live batch -task cpu_idle -start 2015-09-01T00:00:00Z -stop 2015-09-02T00:00:00Z

		This replays the result of the query defined in task 'cpu_idle' and runs the query
		until the queries reaches the stop time, starting at time 'start' and incrementing
		by the schedule defined in the task.

	$ kapacitor replay-live batch -task cpu_idle -past 10h

		This replays the result of the query defined in task 'cpu_idle' and runs the query
		until the queries reaches the present time.
		The starting time for the queries is 'now - 10h' and increments by the schedule defined in the task.

Options:
"""
REPLAY_LIVE_QUERY_USAGE = """Usage: kapacitor replay-live query [options]

Replay the result of a querty against a task.

This is similar to 'kapacitor record query...' but without saving a recording.

Examples:

	$ kapacitor replay-live query -task cpu_alert -rec-time -query 'select value from "telegraf"."default"."cpu_idle" where time > now() - 1h and time < now()'

		This replays the result of the query against the cpu_alert task.


Options:
"""
BACKUP_USAGE = """Usage: kapacitor backup <output file>

	Perform a backup of the Kapacitor database.

	To restore a database first stop Kapacitor, then replace the existing kapacitor.db file with the backup file.
"""


def _printer(text: str) -> Callable[[], None]:
    def show() -> None:
        sys.stderr.write(text + "\n")  # Go's Fprintln after a text ending in a newline
    return show


def _usage_with(text: str, flags: FlagSet) -> Callable[[], None]:
    def show() -> None:
        sys.stderr.write(text + "\n")
        flags.print_defaults()
    return show


# -- Go's parsers ---------------------------------------------------------------------------
RFC3339NANO = "2006-01-02T15:04:05.999999999Z07:00"
_TIME_STEPS = (("2006", r"[0-9]{4}"), ("-", "-"), ("01", r"[0-9]{2}"), ("-", "-"),
               ("02", r"[0-9]{2}"), ("T", "T"), ("15", r"[0-9]{1,2}"), (":", ":"),
               ("04", r"[0-9]{2}"), (":", ":"), ("05", r"[0-9]{2}"),
               (".999999999", r"(?:[.,][0-9]+)?"), ("Z07:00", r"Z|[+-][0-9]{2}:[0-9]{2}"))
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_rfc3339nano(text: str) -> int:
    """``time.Parse(time.RFC3339Nano, text)`` in nanoseconds since the epoch, failing
    with Go's words."""
    value = text
    parts: list[str] = []
    for elem, pattern in _TIME_STEPS:
        match = re.match(pattern, value)
        if match is None:
            raise CommandError(f"parsing time {go_quote(text)} as {go_quote(RFC3339NANO)}: "
                               f"cannot parse {go_quote(value)} as {go_quote(elem)}")
        parts.append(match.group(0))
        value = value[match.end():]
    if value:
        raise CommandError(f"parsing time {go_quote(text)}: extra text: {go_quote(value)}")
    year, month, day, hour, minute, second = (int(parts[i]) for i in (0, 2, 4, 6, 8, 10))
    for name, number, low, high in (("month", month, 1, 12), ("hour", hour, 0, 23),
                                    ("minute", minute, 0, 59), ("second", second, 0, 59)):
        if not low <= number <= high:
            raise CommandError(f"parsing time {go_quote(text)}: {name} out of range")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= (29 if month == 2 and leap else _MONTH_DAYS[month - 1]):
        raise CommandError(f"parsing time {go_quote(text)}: day out of range")
    zone = parts[12]
    offset = 0 if zone == "Z" else (-1 if zone[0] == "-" else 1) * (
        int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    days = (dt.date(year, month, day) - dt.date(1970, 1, 1)).days if year > 0 else (
        (dt.date(1, month, day) - dt.date(1970, 1, 1)).days - 366)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
    fraction = int((parts[11][1:] or "0")[:9].ljust(9, "0"))
    return seconds * S + fraction


_DURATION_UNITS = {"u": 1_000, "µ": 1_000, "s": S, "m": 60 * S, "h": 3600 * S,
                   "d": 86400 * S, "w": 7 * 86400 * S}
_INT64 = 2**63


def parse_influxql_duration(text: str) -> int:
    """InfluxQL's ``ParseDuration`` (``1m``, ``10h``, ``1h30m``, ``-5m``) in ns."""
    if len(text) < 2:
        raise CommandError("invalid duration")
    i, negative, total = 0, False, 0
    measure, unit = 0, ""
    if text[0] == "-":
        negative, i = True, 1
    while i < len(text):
        start = i
        while i < len(text) and text[i] in "0123456789":
            i += 1
        if i >= len(text) or i == start:
            raise CommandError("invalid duration")
        measure = int(text[start:i])
        if measure >= _INT64:
            raise CommandError("invalid duration")
        unit = text[i]
        if unit == "m" and text[i + 1:i + 2] == "s":
            unit = "ms"
            total += measure * 1_000_000
            i += 2
            continue
        if unit not in _DURATION_UNITS:
            raise CommandError("invalid duration")
        total += measure * _DURATION_UNITS[unit]
        i += 1
    total = (total + _INT64) % (2 * _INT64) - _INT64  # Go's int64 arithmetic wraps
    if total < 0 and not negative:
        raise CommandError(f"overflowed duration {measure}{unit}: choose a smaller "
                           "duration or INF")
    return -total if negative else total


def rfc3339nano(ns: int) -> str:
    """Nanoseconds since the epoch as Go's RFC3339Nano (UTC, fraction trimmed)."""
    seconds, fraction = divmod(ns, S)
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def _now_ns() -> int:
    return time.time_ns()


# -- progress bars ----------------------------------------------------------------------------
class ProgressBar:
    """One line on ``out`` (stderr), redrawn in place: ``label [#####.....]  42%``.

    Drawn only when ``enabled`` (stdout is a terminal); ``finish`` ends the line.
    """

    WIDTH = 30

    def __init__(self, label: str, *, enabled: bool, out: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.out = out
        self._shown = False
        self._last = ""

    @property
    def stream(self) -> TextIO:
        return self.out if self.out is not None else sys.stderr

    def update(self, fraction: float, detail: str = "") -> None:
        if not self.enabled:
            return
        fraction = min(max(fraction, 0.0), 1.0) if fraction == fraction else 0.0
        filled = int(fraction * self.WIDTH)
        line = (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
                f"{int(fraction * 100):3d}%{(' ' + detail) if detail else ''}")
        if line == self._last:
            return
        padding = " " * max(0, len(self._last) - len(line))
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._last = line
        self._shown = True

    def finish(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _fraction(item: Mapping[str, Any]) -> float:
    value = item.get("progress")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def _href(item: Mapping[str, Any]) -> str:
    link = item.get("link")
    href = link.get("href", "") if isinstance(link, dict) else ""
    if not isinstance(href, str) or not href:
        raise CommandError("invalid link { }")
    return href


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CommandError("failed to decode JSON: json: cannot unmarshal "
                           f"{_json_kind(value)} into Go value of type client.Recording")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null"


def _wait(ctx: Context, item: dict[str, Any], what: str) -> None:
    """Ask again every half second while ``item`` is running; print its ID; fail with
    its error if it failed (``kapacitor``'s loop)."""
    bar = ProgressBar(f"{what} {item.get('id', '')}", enabled=ctx.is_terminal)
    try:
        while item.get("status") == "running":
            bar.update(_fraction(item))
            time.sleep(POLL_SECONDS)
            href = _href(item)
            item = _object(ctx.client.get(href, codes=(200, 202)))
        if item.get("status") == "finished":
            bar.update(1.0)
    finally:
        bar.finish()
    ctx.write(f"{item.get('id', '')}\n")
    ctx.stdout.flush()
    if item.get("status") not in ("running", "finished"):
        raise CommandError(str(item.get("error") or f"{what} failed: unknown reason"))


def _created(ctx: Context, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return _object(ctx.client.post(path, body, codes=(201,)))


def _finish(ctx: Context, item: dict[str, Any], no_wait: bool, what: str) -> None:
    if no_wait:
        ctx.write(f"{item.get('id', '')}\n")
        return
    _wait(ctx, item, what)


# -- record ---------------------------------------------------------------------------------
def _stream_flags() -> tuple[FlagSet, dict[str, Any]]:
    flags = FlagSet("record-stream")
    opts = {
        "task": flags.string("task", "", "The ID of a task. Uses the dbrp value for the "
                             "task."),
        "duration": flags.string("duration", "", "How long to record the data stream."),
        "no-wait": flags.bool("no-wait", False, "Do not wait for the recording to finish."),
        "recording-id": flags.string("recording-id", "", "The ID to give to this recording. "
                                     "If not set an random ID is chosen."),
    }
    flags.usage = _usage_with(RECORD_STREAM_USAGE, flags)
    return flags, opts


def _batch_flags(name: str, usage: str, *, replay: bool) -> tuple[FlagSet, dict[str, Any]]:
    flags = FlagSet(name)
    opts: dict[str, Any] = {}
    if replay:
        opts["task"] = flags.string("task", "", "The task ID.")
        _replay_flags(flags, opts)
    else:
        opts["task"] = flags.string("task", "", "The ID of a task. Uses the queries "
                                    "contained in the task.")
    opts["start"] = flags.string("start", "", "The start time for the set of queries.")
    opts["stop"] = flags.string("stop", "", "The stop time for the set of queries "
                                "(default now).")
    opts["past"] = flags.string("past", "", "Set start time via 'now - past'.")
    if not replay:
        opts["no-wait"] = flags.bool("no-wait", False, "Do not wait for the recording to "
                                     "finish.")
        opts["recording-id"] = flags.string("recording-id", "", "The ID to give to this "
                                            "recording. If not set an random ID is chosen.")
    flags.usage = _usage_with(usage, flags)
    return flags, opts


def _replay_flags(flags: FlagSet, opts: dict[str, Any]) -> None:
    opts["real-clock"] = flags.bool("real-clock", False, "If set, replay the data in real "
                                    "time. If not set replay data as fast as possible.")
    opts["rec-time"] = flags.bool("rec-time", False, "If set, use the times saved in the "
                                  "recording instead of present times.")
    opts["no-wait"] = flags.bool("no-wait", False, "Do not wait for the replay to finish.")
    opts["replay-id"] = flags.string("replay-id", "", "The ID to give to this replay. If "
                                     "not set a random ID is chosen.")


def _query_flags() -> tuple[FlagSet, dict[str, Any]]:
    flags = FlagSet("record-query")
    opts = {
        "query": flags.string("query", "", "The query to record."),
        "type": flags.string("type", "", "The type of the recording to save "
                             "(stream|batch)."),
        "cluster": flags.string("cluster", "", "Optional named InfluxDB cluster from "
                                "configuration."),
        "no-wait": flags.bool("no-wait", False, "Do not wait for the recording to finish."),
        "recording-id": flags.string("recording-id", "", "The ID to give to this recording. "
                                     "If not set an random ID is chosen."),
    }
    flags.usage = _usage_with(RECORD_QUERY_USAGE, flags)
    return flags, opts


def _s(opts: Mapping[str, Any], name: str) -> str:
    value = opts[name]
    assert isinstance(value, StringValue)
    return value.value


def _b(opts: Mapping[str, Any], name: str) -> bool:
    value = opts[name]
    assert isinstance(value, BoolValue)
    return bool(value.value)


def _usage_error(flags: FlagSet, message: str) -> NoReturn:
    assert flags.usage is not None
    flags.usage()
    raise CommandError(message)


def _range(flags: FlagSet, opts: Mapping[str, Any]) -> tuple[int, int]:
    """start and stop of ``-start``/``-stop``/``-past``, checked as ``kapacitor`` does."""
    start_text, stop_text, past_text = _s(opts, "start"), _s(opts, "stop"), _s(opts, "past")
    if not start_text and not past_text:
        _usage_error(flags, "must set one of start or past flags.")
    if start_text and past_text:
        _usage_error(flags, "cannot set both start and past flags.")
    start, stop = -62135596800 * S, _now_ns()
    if start_text:
        start = parse_rfc3339nano(start_text)
    if stop_text:
        stop = parse_rfc3339nano(stop_text)
    if past_text:
        start = stop - parse_influxql_duration(past_text)
    return start, stop


def _with_id(body: dict[str, Any], key: str, value: str) -> dict[str, Any]:
    return {key: value, **body} if value else body


def do_record(ctx: Context, args: list[str]) -> None:
    if not args:
        _printer(RECORD_USAGE)()
        raise SystemExit(2)
    kind, rest = args[0], args[1:]
    if kind == "stream":
        flags, opts = _stream_flags()
        flags.parse(rest)
        if not _s(opts, "task") or not _s(opts, "duration"):
            _usage_error(flags, "both task and duration are required")
        duration = parse_influxql_duration(_s(opts, "duration"))
        body = _with_id({"task": _s(opts, "task"),
                         "stop": rfc3339nano(_now_ns() + duration)},
                        "id", _s(opts, "recording-id"))
        recording = _created(ctx, RECORDINGS + "/stream", body)
    elif kind == "batch":
        flags, opts = _batch_flags("record-batch", RECORD_BATCH_USAGE, replay=False)
        flags.parse(rest)
        if not _s(opts, "task"):
            _usage_error(flags, "task is required")
        start, stop = _range(flags, opts)
        body = _with_id({"task": _s(opts, "task"), "start": rfc3339nano(start),
                         "stop": rfc3339nano(stop)}, "id", _s(opts, "recording-id"))
        recording = _created(ctx, RECORDINGS + "/batch", body)
    elif kind == "query":
        flags, opts = _query_flags()
        flags.parse(rest)
        if not _s(opts, "query") or not _s(opts, "type"):
            _usage_error(flags, "both query and type are required")
        kind_name = _s(opts, "type") if _s(opts, "type") in ("stream", "batch") else "invalid"
        body = _with_id({"query": _s(opts, "query"), "type": kind_name}, "id",
                        _s(opts, "recording-id"))
        if _s(opts, "cluster"):
            body["cluster"] = _s(opts, "cluster")
        recording = _created(ctx, RECORDINGS + "/query", body)
    else:
        raise CommandError(f"Unknown record type {go_quote(kind)}, expected 'stream', "
                           "'batch' or 'query'")
    _finish(ctx, recording, _b(opts, "no-wait"), "recording")


# -- replay ---------------------------------------------------------------------------------
def _replay_main_flags() -> tuple[FlagSet, dict[str, Any]]:
    flags = FlagSet("replay")
    opts: dict[str, Any] = {"task": flags.string("task", "", "The task ID."),
                            "recording": flags.string("recording", "", "The recording ID.")}
    _replay_flags(flags, opts)
    flags.usage = _usage_with(REPLAY_USAGE, flags)
    return flags, opts


def replay_usage() -> None:
    flags, _ = _replay_main_flags()
    assert flags.usage is not None
    flags.usage()


def do_replay(ctx: Context, args: list[str]) -> None:
    flags, opts = _replay_main_flags()
    flags.parse(args)
    if not _s(opts, "recording"):
        _usage_error(flags, "must pass recording ID")
    if not _s(opts, "task"):
        _usage_error(flags, "must pass task ID")
    replay = _created(ctx, REPLAYS, {
        "id": _s(opts, "replay-id"), "recording": _s(opts, "recording"),
        "task": _s(opts, "task"), "recording-time": _b(opts, "rec-time"),
        "clock": "real" if _b(opts, "real-clock") else "fast"})
    _finish(ctx, replay, _b(opts, "no-wait"), "replay")


def do_replay_live(ctx: Context, args: list[str]) -> None:
    if not args:
        _printer(REPLAY_LIVE_USAGE)()
        raise SystemExit(2)
    kind, rest = args[0], args[1:]
    if kind == "batch":
        flags, opts = _batch_flags("replay-live-batch", REPLAY_LIVE_BATCH_USAGE,
                                   replay=True)
        flags.parse(rest)
        if not _s(opts, "task"):
            _usage_error(flags, "task is required")
        start, stop = _range(flags, opts)
        body = _with_id({"task": _s(opts, "task"), "start": rfc3339nano(start),
                         "stop": rfc3339nano(stop)}, "id", _s(opts, "replay-id"))
        path = REPLAYS + "/batch"
    elif kind == "query":
        flags = FlagSet("replay-live-query")
        opts = {"task": flags.string("task", "", "The task ID.")}
        _replay_flags(flags, opts)
        opts["query"] = flags.string("query", "", "The query to replay.")
        opts["cluster"] = flags.string("cluster", "", "Optional named InfluxDB cluster "
                                       "from configuration.")
        flags.usage = _usage_with(REPLAY_LIVE_QUERY_USAGE, flags)
        flags.parse(rest)
        if not _s(opts, "query") or not _s(opts, "task"):
            _usage_error(flags, "both query and task are required")
        body = _with_id({"task": _s(opts, "task"), "query": _s(opts, "query")}, "id",
                        _s(opts, "replay-id"))
        if _s(opts, "cluster"):
            body["cluster"] = _s(opts, "cluster")
        path = REPLAYS + "/query"
    else:
        raise CommandError(f"Unknown replay-live type {go_quote(kind)}, expected 'batch' "
                           "or 'query'")
    body["recording-time"] = _b(opts, "rec-time")
    body["clock"] = "real" if _b(opts, "real-clock") else "fast"
    replay = _created(ctx, path, body)
    _finish(ctx, replay, _b(opts, "no-wait"), "replay")


# -- list / delete ----------------------------------------------------------------------------
def _list(ctx: Context, path: str, key: str, pattern: str, fields: list[str],
          offset: int = 0) -> list[dict[str, Any]]:
    answer = ctx.client.get(path, {"pattern": pattern, "fields": fields,
                                   "offset": str(offset), "limit": str(LIMIT)})
    items = answer.get(key) if isinstance(answer, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _all(ctx: Context, path: str, key: str, patterns: list[str],
         fields: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for pattern in patterns:
        offset = 0
        while True:
            items = _list(ctx, path, key, pattern, fields, offset)
            out.extend(items)
            if len(items) != LIMIT:
                break
            offset += LIMIT
    return out


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return int(value) % 2**64  # Go's uint64(r.Size)


def list_recordings_kind(ctx: Context, patterns: list[str]) -> None:
    recordings = _all(ctx, RECORDINGS, "recordings", patterns,
                      ["type", "size", "date", "status"])
    if ctx.json_output:
        ctx.print_json(recordings)
        return
    max_id = max([2] + [width(str(r.get("id", ""))) for r in recordings])
    fmt = f"%-{max_id + 1}s%-8v%-10s%-10s%-23s\n"
    out = [go_sprintf(fmt, "ID", "Type", "Status", "Size", "Date")]
    for r in recordings:
        out.append(go_sprintf(fmt, str(r.get("id", "")), str(r.get("type", "")),
                              str(r.get("status", "")), humanize_bytes(_size(r.get("size"))),
                              rfc822(r.get("date"), local=True)))
    ctx.write("".join(out))


def list_replays_kind(ctx: Context, patterns: list[str]) -> None:
    replays = _all(ctx, REPLAYS, "replays", patterns,
                   ["task", "recording", "status", "clock", "date"])
    if ctx.json_output:
        ctx.print_json(replays)
        return
    max_id = max([2] + [width(str(r.get("id", ""))) for r in replays])
    max_task = max([4] + [width(str(r.get("task", ""))) for r in replays])
    max_rec = max([9] + [width(str(r.get("recording", ""))) for r in replays])
    fmt = f"%-{max_id + 1}v%-{max_task + 1}v%-{max_rec + 1}v%-9v%-8v%-23v\n"
    out = [go_sprintf(fmt, "ID", "Task", "Recording", "Status", "Clock", "Date")]
    for r in replays:
        out.append(go_sprintf(fmt, str(r.get("id", "")), str(r.get("task", "")),
                              str(r.get("recording", "")), str(r.get("status", "")),
                              str(r.get("clock", "")), rfc822(r.get("date"), local=True)))
    ctx.write("".join(out))


def _delete_kind(path: str, key: str) -> Callable[[Context, list[str]], None]:
    def run(ctx: Context, patterns: list[str]) -> None:
        for pattern in patterns:
            while True:
                items = _list(ctx, path, key, pattern, ["link"])
                for item in items:
                    ctx.client.delete(_href(item))
                if len(items) != LIMIT:
                    break
    return run


# -- backup ---------------------------------------------------------------------------------
def do_backup(ctx: Context, args: list[str]) -> None:
    if len(args) != 1:
        raise CommandError("must provide file path for backup.")
    path = args[0]
    try:
        out = open(path, "wb")  # noqa: SIM115 - closed below, as Go's deferred Close
    except OSError as exc:
        raise CommandError(f"failed to create backup file: {os_error('open', path, exc)}"
                           ) from None
    with out:
        written = 0
        reading = False
        try:
            # As the Go client: any status, the body is the backup
            with ctx.client.stream("GET", BACKUP, codes=range(100, 600)) as answer:
                size = answer.content_length if answer.content_length is not None else -1
                if (answer.headers.get("content-encoding") or "").lower() == "gzip":
                    size = -1  # Go's transport unzips and forgets the length
                bar = ProgressBar(f"backup {path}", enabled=ctx.is_terminal)
                reading = True
                try:
                    for chunk in answer.iter_bytes():
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            raise CommandError("failed to save backup: "
                                               f"{os_error('write', path, exc)}") from None
                        written += len(chunk)
                        if size > 0:
                            bar.update(written / size, f"{humanize_bytes(written)} of "
                                                       f"{humanize_bytes(size)}")
                finally:
                    bar.finish()
        except APIError as exc:
            if reading:
                raise CommandError("failed to save backup: unexpected EOF") from None
            raise CommandError(f"failed to perform backup: {exc}") from None
    if written != size:
        raise CommandError(f"failed to download entire backup, only wrote {written} bytes "
                           f"out of a total {size} bytes.")


def register(registry: Registry) -> None:
    registry.add(Command("record", do_record, _printer(RECORD_USAGE)))
    registry.add(Command("replay", do_replay, replay_usage))
    # kapacitor's "help replay-live" is an unknown command
    registry.add(Command("replay-live", do_replay_live, _printer(REPLAY_LIVE_USAGE),
                         help=None, has_help=False))
    registry.add(Command("backup", do_backup, _printer(BACKUP_USAGE)))
    registry.add_kind("list", "recordings", list_recordings_kind)
    registry.add_kind("list", "replays", list_replays_kind)
    registry.add_kind("delete", "recordings", _delete_kind(RECORDINGS, "recordings"))
    registry.add_kind("delete", "replays", _delete_kind(REPLAYS, "replays"))
