"""The `shears` command. Each subcommand imports only its own side, so `shears api` never
loads torch and `shears prune` needs no server."""

import os
import sys
from collections.abc import Callable
from importlib import import_module

# command -> (module, function taking the arguments after the command, summary)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "serve": ("service.cli", "serve", "API and a worker in one command, embedded broker: no Redis"),
    "api": ("service.cli", "api", "the HTTP API alone (workers run separately)"),
    "worker": ("worker.cli", "main", "a Celery worker that runs pruning jobs"),
    "prune": ("pruning.cli", "prune_command", "prune a model file locally, no server"),
    "inspect": ("pruning.cli", "inspect_command", "describe a model file as JSON, no server"),
    "submit": ("shears_client.cli", "submit", "upload, prune on a server, fetch the results"),
    "jobs": ("shears_client.cli", "jobs", "list a server's recent jobs"),
    "report": ("shears_client.cli", "report", "print a job's report, or save its page"),
    "keys": ("shears_config.api_keys", "keys_command", "`keys new TENANT`: a new API key"),
    "webhook-secrets": (
        "service.secret_box",
        "webhook_secrets_command",
        "`new-key` | `rotate`: keys sealing webhook secrets",
    ),
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in _COMMANDS:
        print("usage: shears COMMAND [options]\n\ncommands:")
        for name, (_, _, summary) in _COMMANDS.items():
            print(f"  {name:<16} {summary}")
        return 0 if args and args[0] in ("-h", "--help") else 2
    module, function, _ = _COMMANDS[args[0]]
    entry: Callable[[list[str]], int] = getattr(import_module(module), function)
    try:
        return entry(args[1:])
    except BrokenPipeError:
        return _reader_left()


def _reader_left() -> int:
    """`shears jobs | head`: the reader closed the pipe, having read all it wanted. Success,
    quietly; stdout goes to /dev/null so the flush at exit cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
