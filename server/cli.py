"""The `streamflix` command line. Exit codes: 0 success, 1 failure (one line on stderr,
no traceback unless --debug), 2 bad usage."""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from typing import Any, Sequence

from server.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _int_at_least(minimum: int, what: str):  # type: ignore[no-untyped-def]
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


_positive_int = _int_at_least(1, "must be at least 1")
_non_negative_int = _int_at_least(0, "must not be negative")


def _credit(text: str) -> dict[str, str]:
    name, _, rest = text.partition(":")
    role, _, character = rest.partition(":")
    if not name.strip():
        raise argparse.ArgumentTypeError(f"a credit needs a name: {text!r}")
    fields = {"name": name.strip(), "role": role.strip(), "character": character.strip()}
    return {k: v for k, v in fields.items() if v}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's copy of the option must not reset what was given before it.
    common.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML settings file (flags > env > file)"
    )
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks and debug logs"
    )

    parser = argparse.ArgumentParser(prog="streamflix", description="Video streaming origin.", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("migrate", parents=[common], help="create or upgrade every schema")

    p = sub.add_parser("serve", parents=[common], help="run the HTTP server")
    p.add_argument("--host")
    p.add_argument("--port", type=_positive_int)
    p.add_argument("--workers", type=_positive_int, default=1)
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default=None, help="event loop (default uvloop, asyncio when uvloop is missing; measured in docs/origin.md)")

    p = sub.add_parser("worker", parents=[common], help="run transcode jobs")
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--concurrency", type=_positive_int, default=1)

    p = sub.add_parser("ingest", parents=[common], help="register a title and queue its transcode")
    p.add_argument("source", metavar="SOURCE", help="a local file, s3:// or http(s):// URL")
    p.add_argument("--title", required=True)
    p.add_argument("--kind", choices=("movie", "episode"), default=None)
    p.add_argument("--series")
    p.add_argument("--season", type=_non_negative_int)
    p.add_argument("--episode", type=_non_negative_int)
    p.add_argument("--year", type=_positive_int)
    p.add_argument("--genre", action="append", default=[])
    p.add_argument("--description", default="")
    p.add_argument(
        "--credit",
        action="append",
        default=[],
        type=_credit,
        metavar="NAME[:ROLE[:CHARACTER]]",
        help='cast or crew, repeatable: --credit "Keanu Reeves:actor:Neo"',
    )
    p.add_argument("--wait", action="store_true", help="return when the title is ready or failed")
    p.add_argument("--json", action="store_true")

    titles = sub.add_parser("titles", parents=[common], help="the catalog from the shell")
    tsub = titles.add_subparsers(dest="titles_command", required=True, metavar="ACTION")
    p = tsub.add_parser("list", parents=[common])
    p.add_argument("--json", action="store_true")
    p = tsub.add_parser("show", parents=[common])
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = tsub.add_parser("delete", parents=[common])
    p.add_argument("id")

    users = sub.add_parser("users", parents=[common], help="manage users")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = usub.add_parser("create", parents=[common])
    p.add_argument("email")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--display-name", default="")
    p = usub.add_parser("list", parents=[common])
    p.add_argument("--json", action="store_true")
    p = usub.add_parser("set-role", parents=[common])
    p.add_argument("email")
    p.add_argument("role", choices=("viewer", "admin"))
    p = usub.add_parser("prune", parents=[common], help="delete expired tokens and dead sessions")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("demo", parents=[common], help="quickstart: sample title, server, login")
    p.add_argument("source", nargs="?", help="a video to use instead of a generated sample")
    p.add_argument("--host")
    p.add_argument("--port", type=_positive_int)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "debug": getattr(args, "debug", None),
    }
    return Settings.load(config_file=getattr(args, "config", None), overrides=overrides)


def _command_module(args: argparse.Namespace) -> str:
    name = args.command.replace("-", "_")
    return f"server.commands.{name}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = settings_from_args(args)
        module = importlib.import_module(_command_module(args))
        code = module.main(settings, args) if hasattr(module, "main") else asyncio.run(module.run(settings, args))
    except KeyboardInterrupt:
        print("streamflix: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line on stderr, traceback only with --debug
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"streamflix {args.command}: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
