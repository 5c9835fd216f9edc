"""`event-platform lms ...`: the fifth source's commands."""

import argparse


def add_commands(subcommands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    lms = subcommands.add_parser("lms", help="the second LMS")
    actions = lms.add_subparsers(dest="action", required=True)
    actions.add_parser("courses", help="list the courses it exports").set_defaults(
        run=lambda _: print("algebra")
    )
