"""``kapa-core``: the daemon's command line, shaped like ``kapacitord``.

    kapa-core [run] [-config path] [-hostname name] [-pidfile path] [-log-file path]
              [-log-level level] [-blacklist-cidrs cidrs] [-disable-handlers kinds]
    kapa-core config [-config path] [-hostname name]
    kapa-core version
    kapa-core plugins
    kapa-core restore [-config path] FILE
    kapa-core help [command]

Flags take Go's single dash (``-config x``, ``-config=x``); double dashes work too.
``KAPACITOR_OPTS`` supplies extra flags for ``run`` (as the systemd unit does);
flags given on the command line win over it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from collections.abc import Mapping, Sequence

from kapa_core import KAPACITOR_COMPAT_VERSION, __version__
from kapa_core.config.loader import CommandLine, ConfigLayers, find_config_path, read_toml
from kapa_core.config.toml_out import dump
from kapa_core.errors import ConfigError, KapaError, PluginError
from kapa_core.plugins import Plugins, load_plugins

COMMANDS = ("run", "config", "version", "plugins", "restore", "help")
DESCRIPTIONS = {
    "run": "Run the daemon (the default command).",
    "config": "Print the default configuration merged with a file, as TOML.",
    "version": "Print the version.",
    "plugins": "List loaded plugins, their versions and hooks, and plugins that failed.",
    "restore": "Replace the store ([storage] boltdb) with a backup saved by "
               "`kapacitor backup FILE`; the daemon must be stopped.",
    "help": "Show help for a command.",
}


def _flag(parser: argparse.ArgumentParser, name: str, help: str, metavar: str) -> None:
    dest = name.replace("-", "_")
    parser.add_argument(f"-{name}", f"--{name}", dest=dest, default=None, metavar=metavar,
                        help=help)


def build_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"kapa-core {command}", description=DESCRIPTIONS[command],
        epilog="Flags accept one or two dashes: -config x, -config=x, --config x.")
    if command in ("run", "config", "restore"):
        _flag(parser, "config", "Path to the configuration file (default: "
              "$KAPACITOR_CONFIG_PATH, then ~/.kapacitor/kapacitor.conf, then "
              "/etc/kapacitor/kapacitor.conf, else embedded defaults).", "PATH")
        _flag(parser, "hostname", "Override the hostname key of the configuration.", "NAME")
    if command == "run":
        _flag(parser, "pidfile", "Write the process ID to this file (removed at exit).",
              "PATH")
        _flag(parser, "log-file", "Write logs to this file (overrides [logging] file).",
              "PATH")
        _flag(parser, "log-level", "debug, info, warn or error (overrides [logging] level).",
              "LEVEL")
        _flag(parser, "blacklist-cidrs", "Comma-separated CIDRs kapa-core must not connect "
              "to and whose clients get 403 from the API; 'private' stands for the "
              "private ranges.", "CIDRS")
        _flag(parser, "disable-handlers", "Comma-separated alert handler kinds that may not "
              "be used, e.g. exec,httppost.", "KINDS")
        parser.add_argument("-cpuprofile", "--cpuprofile", help=argparse.SUPPRESS)
        parser.add_argument("-memprofile", "--memprofile", help=argparse.SUPPRESS)
    if command == "restore":
        parser.add_argument("file", metavar="FILE", help="The backup: a file saved by "
                            "`kapacitor backup` or GET /kapacitor/v1/storage/backup. It is "
                            "checked (a kapa-core SQLite store passing integrity_check) "
                            "before it replaces the store.")
    if command == "help":
        parser.add_argument("topic", nargs="?", choices=COMMANDS, help="A command.")
    return parser


def main_usage() -> str:
    lines = ["Usage: kapa-core [command] [flags]", "",
             "kapa-core is a stream processing engine for time series, compatible with "
             f"Kapacitor {KAPACITOR_COMPAT_VERSION}.", "", "Commands:"]
    lines += [f"  {name:<9}{desc}" for name, desc in DESCRIPTIONS.items()]
    lines += ["", "Run 'kapa-core <command> --help' for a command's flags."]
    return "\n".join(lines)


def _layers(args: argparse.Namespace, environ: Mapping[str, str],
            plugins: Plugins) -> tuple[ConfigLayers, str | None]:
    path = find_config_path(args.config, environ)
    layers = ConfigLayers(plugins.ordered_sections())
    data = read_toml(path) if path else None
    cli = CommandLine(hostname=args.hostname or "",
                      log_file=getattr(args, "log_file", None) or "",
                      log_level=getattr(args, "log_level", None) or "")
    layers.load(data, environ, cli)
    return layers, path


def cmd_config(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plugins = load_plugins()
    _report_broken(plugins)
    layers, path = _layers(args, environ, plugins)
    if path:
        print(f"Merging with configuration at: {path}", file=sys.stderr)
    config = layers.build(layers.effective_raw())
    for name in config.unknown:
        print(f"warning: unknown configuration key ignored: {name}", file=sys.stderr)
    sys.stdout.write(dump(config.root, [(s, config.get(s.name))
                                        for s in layers.sections.values()]))
    return 0


def cmd_version(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    print(f"kapa-core version {__version__} (Kapacitor {KAPACITOR_COMPAT_VERSION} compatible)")
    return 0


def cmd_plugins(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    plugins = load_plugins()
    print("Loaded plugins:")
    for info in sorted(plugins.infos, key=lambda i: i.name):
        dist = f"{info.distribution} {info.version}".strip() or "-"
        print(f"  {info.name:<20} {dist:<24} {info.module}")
        print(f"  {'':<20} hooks: {', '.join(info.hooks) or '-'}")
    if plugins.broken:
        print("\nPlugins that failed to load:")
        for broken in plugins.broken:
            print(f"  {broken.name:<20} {broken.value}: {broken.reason}")
    return 0


def cmd_restore(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from kapa_core.storage import restore

    plugins = load_plugins()
    layers, path = _layers(args, environ, plugins)
    dest = layers.build(layers.effective_raw())["storage"].boltdb
    restore(args.file, dest)
    print(f"restored {args.file} into {dest}")
    return 0


def cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import trio

    from kapa_core.daemon import Daemon, DaemonOptions

    plugins = load_plugins()
    _report_broken(plugins)
    layers, path = _layers(args, environ, plugins)
    options = DaemonOptions(
        pidfile=args.pidfile or "",
        blacklist_cidrs=tuple(filter(None, (args.blacklist_cidrs or "").split(","))),
        disable_handlers=tuple(filter(None, (args.disable_handlers or "").split(","))),
        config_path=path)
    daemon = Daemon(plugins, layers, options)  # validates the whole configuration
    trio.run(daemon.run)
    return 0


def _report_broken(plugins: Plugins) -> None:
    for broken in plugins.broken:
        print(f"warning: plugin {broken.name} ({broken.value}) failed to load: "
              f"{broken.reason}", file=sys.stderr)


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The KapaError inside a (nested) exception group, else the group itself."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            inner = _first_error(exc)
            if inner is not exc:
                return inner
        elif isinstance(exc, KapaError | KeyboardInterrupt):
            return exc
    return group


HANDLERS = {"run": cmd_run, "config": cmd_config, "version": cmd_version,
            "plugins": cmd_plugins, "restore": cmd_restore}


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    if argv and argv[0] in ("-h", "--help", "-help"):
        print(main_usage())
        return 0
    command = "run"
    if argv and argv[0] in COMMANDS:
        command = argv.pop(0)
    if command == "help":
        args = build_parser("help").parse_args(argv)
        if args.topic and args.topic != "help":
            build_parser(args.topic).print_help()
        else:
            print(main_usage())
        return 0
    if command != "run":  # `kapa-core config | head` must not print a traceback
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if command == "run":
        argv = shlex.split(environ.get("KAPACITOR_OPTS", "")) + argv
    args = build_parser(command).parse_args(argv)
    try:
        try:
            return HANDLERS[command](args, environ)
        except BaseExceptionGroup as group:  # an error from inside the daemon's nursery
            raise _first_error(group) from None
    except ConfigError as exc:
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
    except PluginError as exc:
        print(f"error: plugins: {exc}", file=sys.stderr)
    except KapaError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
