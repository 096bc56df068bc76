"""Shell completion for ``kapa`` (an addition; ``kapacitor`` has none).

``kapa completion bash`` and ``kapa completion zsh`` print a script to source. It
completes command names, the kinds of ``list``/``delete`` (``list tasks``), and ids
fetched from the daemon with ``kapa __complete <what>`` (tasks, templates, topics,
recordings, replays, service-tests), using the same ``-url``/``KAPACITOR_URL`` as the
command line being completed.
"""

from __future__ import annotations

import sys
from typing import Any

from kapa_core.cli.kapa.api import BASE, APIError
from kapa_core.cli.kapa.registry import Command, CommandError, Context, Registry

__all__ = ["register"]

COMMANDS = (
    "record define define-template define-topic-handler replay replay-live watch logs "
    "enable disable reload push delete list show show-template show-topic-handler "
    "show-topic backup level stats version vars service-tests help completion"
)
LIST_KINDS = "tasks templates recordings replays topics topic-handlers service-tests"
DELETE_KINDS = "tasks templates recordings replays topics topic-handlers"

#: What ``__complete`` lists: API path, the answer's key, the id field.
SOURCES = {
    "tasks": (BASE + "/tasks", "tasks", "id"),
    "templates": (BASE + "/templates", "templates", "id"),
    "topics": (BASE + "/alerts/topics", "topics", "id"),
    "recordings": (BASE + "/recordings", "recordings", "id"),
    "replays": (BASE + "/replays", "replays", "id"),
    "service-tests": (BASE + "/service-tests", "services", "name"),
}

BASH = r"""# bash completion for kapa (source it: source <(kapa completion bash))
_kapa_ids() {
    local url_args=() i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -url|--url) url_args=(-url "${COMP_WORDS[i+1]}") ;;
            -url=*|--url=*) url_args=("${COMP_WORDS[i]}") ;;
        esac
    done
    kapa "${url_args[@]}" __complete "$1" 2>/dev/null
}
_kapa() {
    local cur cmd i kind
    cur="${COMP_WORDS[COMP_CWORD]}"
    cmd="" ; kind=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            -url|--url) ((i++)) ;;
            -*) ;;
            *) if [[ -z "$cmd" ]]; then cmd="${COMP_WORDS[i]}"; elif [[ -z "$kind" ]]; then kind="${COMP_WORDS[i]}"; fi ;;
        esac
    done
    case "$cmd" in
        "") COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur")) ;;
        list) if [[ -z "$kind" ]]; then COMPREPLY=($(compgen -W "@LIST_KINDS@" -- "$cur"));
              elif [[ "$kind" == topic-handlers ]]; then COMPREPLY=($(compgen -W "$(_kapa_ids topics)" -- "$cur"));
              else COMPREPLY=($(compgen -W "$(_kapa_ids "$kind")" -- "$cur")); fi ;;
        delete) if [[ -z "$kind" ]]; then COMPREPLY=($(compgen -W "@DELETE_KINDS@" -- "$cur"));
              elif [[ "$kind" == topic-handlers ]]; then COMPREPLY=($(compgen -W "$(_kapa_ids topics)" -- "$cur"));
              else COMPREPLY=($(compgen -W "$(_kapa_ids "$kind")" -- "$cur")); fi ;;
        enable|disable|reload|show|define|watch) COMPREPLY=($(compgen -W "$(_kapa_ids tasks)" -- "$cur")) ;;
        show-template|define-template) COMPREPLY=($(compgen -W "$(_kapa_ids templates)" -- "$cur")) ;;
        show-topic|show-topic-handler) COMPREPLY=($(compgen -W "$(_kapa_ids topics)" -- "$cur")) ;;
        service-tests) COMPREPLY=($(compgen -W "$(_kapa_ids service-tests)" -- "$cur")) ;;
        stats) COMPREPLY=($(compgen -W "general ingress" -- "$cur")) ;;
        level) COMPREPLY=($(compgen -W "debug info error" -- "$cur")) ;;
        help) COMPREPLY=($(compgen -W "@COMMANDS@" -- "$cur")) ;;
        completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
        record|replay-live) COMPREPLY=($(compgen -W "stream batch query" -- "$cur")) ;;
        *) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _kapa kapa
"""

ZSH = r"""#compdef kapa
# zsh completion for kapa (source it: source <(kapa completion zsh))
_kapa_ids() {
    local -a url_args
    local i
    for ((i = 2; i < CURRENT; i++)); do
        case "${words[i]}" in
            -url|--url) url_args=(-url "${words[i+1]}") ;;
            -url=*|--url=*) url_args=("${words[i]}") ;;
        esac
    done
    kapa "${url_args[@]}" __complete "$1" 2>/dev/null
}
_kapa() {
    local cmd="" kind="" i
    for ((i = 2; i < CURRENT; i++)); do
        case "${words[i]}" in
            -url|--url) ((i++)) ;;
            -*) ;;
            *) if [[ -z "$cmd" ]]; then cmd="${words[i]}"; elif [[ -z "$kind" ]]; then kind="${words[i]}"; fi ;;
        esac
    done
    local -a choices
    case "$cmd" in
        "") choices=(@COMMANDS@) ;;
        list) if [[ -z "$kind" ]]; then choices=(@LIST_KINDS@);
              elif [[ "$kind" == topic-handlers ]]; then choices=(${(f)"$(_kapa_ids topics)"});
              else choices=(${(f)"$(_kapa_ids $kind)"}); fi ;;
        delete) if [[ -z "$kind" ]]; then choices=(@DELETE_KINDS@);
              elif [[ "$kind" == topic-handlers ]]; then choices=(${(f)"$(_kapa_ids topics)"});
              else choices=(${(f)"$(_kapa_ids $kind)"}); fi ;;
        enable|disable|reload|show|define|watch) choices=(${(f)"$(_kapa_ids tasks)"}) ;;
        show-template|define-template) choices=(${(f)"$(_kapa_ids templates)"}) ;;
        show-topic|show-topic-handler) choices=(${(f)"$(_kapa_ids topics)"}) ;;
        service-tests) choices=(${(f)"$(_kapa_ids service-tests)"}) ;;
        stats) choices=(general ingress) ;;
        level) choices=(debug info error) ;;
        help) choices=(@COMMANDS@) ;;
        completion) choices=(bash zsh) ;;
        record|replay-live) choices=(stream batch query) ;;
        *) _files; return ;;
    esac
    compadd -- $choices
}
if [[ "$funcstack[1]" == "_kapa" ]]; then _kapa "$@"; else compdef _kapa kapa; fi
"""

COMPLETION_USAGE = """Usage: kapa completion (bash|zsh)

	Print a shell completion script for kapa.

	bash:	source <(kapa completion bash)
	zsh:	source <(kapa completion zsh)
"""


def _script(template: str) -> str:
    return (template.replace("@COMMANDS@", COMMANDS)
            .replace("@LIST_KINDS@", LIST_KINDS)
            .replace("@DELETE_KINDS@", DELETE_KINDS))


def usage() -> None:
    sys.stderr.write(COMPLETION_USAGE + "\n")


def do_completion(ctx: Context, args: list[str]) -> None:
    if len(args) != 1 or args[0] not in ("bash", "zsh"):
        usage()
        raise SystemExit(2)
    ctx.write(_script(BASH if args[0] == "bash" else ZSH))


def do_complete(ctx: Context, args: list[str]) -> None:
    """``kapa __complete <what>``: ids, one a line (nothing on any failure)."""
    if len(args) != 1 or args[0] not in SOURCES:
        raise SystemExit(2)
    path, key, field = SOURCES[args[0]]
    params: dict[str, Any] = {"fields": field, "limit": "10000"}
    if args[0] in ("topics", "service-tests"):
        params = {}
    try:
        answer = ctx.client.get(path, params)
    except (APIError, CommandError):
        raise SystemExit(1) from None
    items = answer.get(key) if isinstance(answer, dict) else None
    ctx.write("".join(f"{item.get(field, '')}\n" for item in items or []
                      if isinstance(item, dict)))


def register(registry: Registry) -> None:
    registry.add(Command("completion", do_completion, usage))
    registry.add(Command("__complete", do_complete, usage, has_help=False, hidden=True))
