"""`python -m deleter_cli`: the operator's tool for the deletion queue and its dead letters.

    enqueue               validate deletion requests with the function's own model, then send them
    dead-letters list     failure records and forwarded dead letters, read without removing them
    dead-letters show     one record in full
    dead-letters replay   send the originals again, then remove the records

Modules: `_app` and `_dead_letters_app` (the commands), `_common` (shared options, consoles),
`_config` (connection and queues from options, environment, local settings), `_errors` (exit codes,
Service Bus failures as messages), `_enqueue` (reading, validating and sending requests), `_deadletter`
(what a dead letter says, and its replay copy; pure), `_filters` (pure), `_dlq` (browsing and replaying:
the I/O), `_render` (tables, details, JSON).
"""

from deleter_cli._app import app, main

__all__ = ["app", "main"]
