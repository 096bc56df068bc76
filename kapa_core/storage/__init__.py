"""Storage: everything the API creates, in one SQLite file (see :mod:`.store`)."""

from kapa_core.storage.store import Store, check_backup, restore

TASKS = "tasks"
TEMPLATES = "templates"
OVERRIDES = "overrides"
TOPIC_STATES = "topic-states"
HANDLER_SPECS = "handler-specs"
RECORDINGS = "recordings"
REPLAYS = "replays"
LOAD = "load"
USERS = "users"
SUBSCRIPTION_TOKENS = "subscription-tokens"
#: Saved node state of tasks (kapa_core/engine/snapshots.py)
SNAPSHOTS = "task-snapshots"

__all__ = [
           "HANDLER_SPECS",
           "LOAD",
           "OVERRIDES",
           "RECORDINGS",
           "REPLAYS",
           "SNAPSHOTS",
           "SUBSCRIPTION_TOKENS",
           "TASKS",
           "TEMPLATES",
           "TOPIC_STATES",
           "USERS",
           "Store",
           "check_backup",
           "restore",
]
