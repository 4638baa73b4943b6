"""Every command module under server/commands/ is registered in server/cli.py, and has what
the CLI reads from it."""

from __future__ import annotations

from pathlib import Path

from server import cli


def test_every_command_module_is_registered() -> None:
    modules = {p.stem for p in (Path(cli.__file__).parent / "commands").glob("*.py") if not p.stem.startswith("_")}
    # a Command is a module: its __name__ is there, the Protocol just does not declare it
    registered = {getattr(c, "__name__").rsplit(".", 1)[1] for c in cli.COMMANDS}  # noqa: B009
    assert registered == modules


def test_each_command_has_a_name_help_flags_and_run() -> None:
    names = [c.NAME for c in cli.COMMANDS]
    assert len(set(names)) == len(names)
    for command in cli.COMMANDS:
        assert command.HELP and callable(command.add_arguments) and callable(command.run), command.NAME
