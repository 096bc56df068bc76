"""``kapa``: the command-line client, with the ``kapacitor`` 1.5.7 client's commands,
flags, output and exit codes.

Exit codes (as ``kapacitor``'s): 0 done; 1 no command, an unknown command, ``help``
without a command, or a bad ``KAPACITOR_UNSAFE_SSL``; 2 a flag error (``-h`` exits 0);
3 the command failed (its error on stderr); 4 the URL cannot be used.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from kapa_core.cli.kapa.api import APIError, Client, URLError
from kapa_core.cli.kapa.flags import FlagSet, parse_bool
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry, Run

__all__ = ["build_registry", "main", "usage"]

DEFAULT_URL = "http://localhost:9092"

#: Modules with a ``register(registry)`` function, in this package.
COMMAND_MODULES = ("tasks", "topics", "server", "recordings", "logs", "completion")

USAGE = """
Usage: kapacitor [options] [command] [args]

Commands:

	record                Record the result of a query or a snapshot of the current stream data.
	define                Create/update a task.
	define-template       Create/update a template.
	define-topic-handler  Create/update an alert handler for a topic.
	replay                Replay a recording to a task.
	replay-live           Replay data against a task without recording it.
	watch                 Watch logs for a task.
	logs                  Follow arbitrary Kapacitor logs.
	enable                Enable and start running a task with live data.
	disable               Stop running a task.
	reload                Reload a running task with an updated task definition.
	push                  Publish a task definition to another Kapacitor instance. Not implemented yet.
	delete                Delete tasks, templates, recordings, replays, topics or topic-handlers.
	list                  List information about tasks, templates, recordings, replays, topics, topic-handlers or service-tests.
	show                  Display detailed information about a task.
	show-template         Display detailed information about a template.
	show-topic-handler    Display detailed information about an alert handler for a topic.
	show-topic            Display detailed information about an alert topic.
	backup                Backup the Kapacitor database.
	level                 Sets the logging level on the kapacitord server.
	stats                 Display various stats about Kapacitor.
	version               Displays the Kapacitor version info.
	vars                  Print debug vars in JSON format.
	service-tests         Test a service.
	help                  Prints help for a command.

Options:
"""


def main_flags() -> FlagSet:
    flags = FlagSet("main")
    flags.string("url", "", "The URL http(s)://host:port of the kapacitord server. Defaults "
                 "to the KAPACITOR_URL environment variable or " + DEFAULT_URL
                 + " if not set.")
    flags.bool("skipVerify", False, "Disable SSL verification (note, this is insecure). "
               "Defaults to the KAPACITOR_UNSAFE_SSL environment variable or false if not "
               "set.")
    return flags


def usage() -> NoReturn:
    """The main usage on stderr, then exit 1 (``kapacitor``'s ``usage()``)."""
    sys.stderr.write(USAGE + "\n")
    main_flags().print_defaults()
    raise SystemExit(1)


def help_usage() -> None:
    sys.stderr.write("Usage: kapacitor help [command]\n\n")


def build_registry() -> Registry:
    registry = Registry()
    for name in COMMAND_MODULES:
        module_name = f"{__package__}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        module.register(registry)
    registry.add(Command("help", _help_command(registry), help_usage))
    return registry


def _help_command(registry: Registry) -> Run:
    def run(ctx: Context, args: list[str]) -> None:
        if len(args) != 1:
            help_usage()
            usage()
        command = registry.get(args[0])
        if command is None or not command.has_help:
            sys.stderr.write(f"Unknown command {args[0]}\n")
            usage()
        (command.help or command.usage)()
    return run


def _skip_ssl_from_env() -> bool:
    text = os.environ.get("KAPACITOR_UNSAFE_SSL", "")
    if not text:
        return False
    try:
        return parse_bool(text)
    except ValueError:
        sys.stderr.write(f'strconv.ParseBool: parsing "{text}": invalid syntax\n')
        raise SystemExit(1) from None


def run(argv: Sequence[str]) -> int:
    flags = main_flags()
    url_flag = flags.lookup("url")
    skip_flag = flags.lookup("skipVerify")
    assert url_flag is not None and skip_flag is not None
    args = flags.parse(argv)
    skip_ssl = _skip_ssl_from_env()
    if skip_flag.value.string() == "true":
        skip_ssl = True
    url = os.environ.get("KAPACITOR_URL") or DEFAULT_URL
    if url_flag.value.string():
        url = url_flag.value.string()
    try:
        client = Client(url, skip_verify=skip_ssl)
    except URLError as exc:
        sys.stderr.write(f"{exc}\n")
        return 4
    with client:
        if not args:
            sys.stderr.write("Error: Must pass a command.\n")
            usage()
        registry = build_registry()
        name, args = args[0], args[1:]
        command = registry.get(name)
        if command is None:
            sys.stderr.write(f"Unknown command {name}\n")
            usage()
        assert command is not None
        json_output = False
        if command.json and "--json" in args:
            json_output = True
            args = [arg for arg in args if arg != "--json"]
        ctx = Context(client=client, json_output=json_output)
        try:
            command.run(ctx, args)
        except (CommandError, APIError) as exc:
            sys.stdout.flush()
            sys.stderr.write(f"{exc}\n")
            return 3
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """The ``kapa`` console script."""
    try:
        code = run(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (``kapa list tasks | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.stdout.flush()
    raise SystemExit(code)
