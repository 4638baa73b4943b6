"""What every command's parser shares: the common options and the argument types."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def common_options() -> argparse.ArgumentParser:
    """`--config` and `--debug`, accepted before and after the command (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's copy of the option must not reset what was given before it.
    common.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML settings file (flags > env > file)"
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs"
    )
    return common


def add_action(
    actions: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str | None = None
) -> argparse.ArgumentParser:
    """A command's sub-action (`titles list`), with the common options too. (`_SubParsersAction`
    is what `add_subparsers()` returns; argparse names no public type for it.)"""
    if help is None:
        return actions.add_parser(name, parents=[common_options()])
    return actions.add_parser(name, parents=[common_options()], help=help)


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer >= minimum, with a one-line message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what}: {text!r}")
        return value

    return parse


positive_int = int_at_least(1, "must be at least 1")
non_negative_int = int_at_least(0, "must not be negative")
