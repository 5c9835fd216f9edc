"""`event-platform`: the demo, the sandbox, each source's commands and the lake's (none needs Dagster)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dotenv import load_dotenv

from event_platform.lake import commands as lake_commands
from event_platform.sources import registry
from event_platform.warehouse import commands as warehouse_commands


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="event-platform",
        description="Land product-analytics events and run the platform's sandbox. "
        "Settings come from the environment and from .env (see .env.example).",
    )
    root.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subcommands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The sandbox's commands load it only when they run: the product does not import the sandbox.
    from event_platform.sandbox import commands as sandbox_commands

    sandbox_commands.add_commands(subcommands)
    for source in registry.sources():
        importlib.import_module(source.commands_module).add_commands(subcommands)
    lake_commands.add_commands(subcommands)
    warehouse_commands.add_commands(subcommands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv(".env", override=False)
    arguments = parser().parse_args(argv)
    # Our own progress at INFO; libraries (alembic, botocore, …) only when they warn.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("event_platform").setLevel(logging.DEBUG if arguments.verbose else logging.INFO)
    try:
        return int(arguments.run(arguments) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        # Every error reaches a person as one line that names the fix; -v shows where it came from.
        if arguments.verbose:
            raise
        print(f"error: {one_line(error)} (run with -v for the traceback)", file=sys.stderr)
        return 1


def one_line(error: BaseException) -> str:
    """The error's own message on one line (a dagster Failure keeps it in `description`)."""
    message = getattr(error, "description", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())


if __name__ == "__main__":
    sys.exit(main())
