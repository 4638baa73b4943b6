"""`streamflix users create|list|set-role|prune`: accounts from the shell.

    streamflix users create EMAIL [--admin] [--password-stdin] [--display-name NAME]
    streamflix users list [--json]
    streamflix users set-role EMAIL viewer|admin
    streamflix users prune [--json]     expired tokens and dead sessions (auth/prune.py)

`create` reads the password from stdin with --password-stdin (one line; for scripts, like
`docker login --password-stdin`), else prompts twice on the terminal; it never takes the
password as an argument (it would show in `ps` and shell history).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys

import asyncpg

from auth import users
from auth.errors import UserNotFound
from server.commands._args import add_action
from server.settings import Settings

NAME = "users"
HELP = "manage users"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    p = add_action(actions, "create")
    p.add_argument("email")
    p.add_argument("--admin", action="store_true")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--display-name", default="")
    p = add_action(actions, "list")
    p.add_argument("--json", action="store_true")
    p = add_action(actions, "set-role")
    p.add_argument("email")
    p.add_argument("role", choices=("viewer", "admin"))
    p = add_action(actions, "prune", help="delete expired tokens and dead sessions")
    p.add_argument("--json", action="store_true")


class UsageError(Exception):
    pass


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise UsageError("no password on stdin")
        return password
    if not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal: pipe the password in with --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise UsageError("the passwords do not match")
    return first


async def _create(settings: Settings, args: argparse.Namespace, password: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        user = await users.create_user(
            conn,
            email=args.email,
            password=password,
            display_name=args.display_name,
            role="admin" if args.admin else "viewer",
        )
    finally:
        await conn.close()
    print(user.id)
    print(f"created {user.role} {user.email}", file=sys.stderr)
    return 0


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        everyone: list[users.User] = []
        cursor = None
        while True:
            page, cursor = await users.list_users(conn, limit=500, cursor=cursor)
            everyone += page
            if cursor is None:
                break
    finally:
        await conn.close()
    if args.json:
        print(json.dumps([u.to_json() for u in everyone], indent=2))
        return 0
    width = max([len(u.email) for u in everyone] + [5])
    print(f"{'ID':36}  {'EMAIL':{width}}  {'ROLE':6}  VERIFIED  CREATED")
    for u in everyone:
        print(
            f"{u.id:36}  {u.email:{width}}  {u.role:6}  {'yes' if u.email_verified else 'no':8}  "
            f"{u.created_at:%Y-%m-%d %H:%M}"
        )
    return 0


async def _set_role(settings: Settings, args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        user = await users.find_by_email(conn, args.email)
        if user is None:
            raise UserNotFound(f"no user with email {args.email}")
        user = await users.set_role(conn, user.id, args.role)
    finally:
        await conn.close()
    print(f"{user.email} is now {user.role}")
    return 0


async def _prune(settings: Settings, args: argparse.Namespace) -> int:
    from auth.prune import prune

    conn = await asyncpg.connect(settings.database_url)
    try:
        counts = await prune(conn, access_token_ttl_s=settings.access_token_ttl_s)
    finally:
        await conn.close()
    if args.json:
        print(json.dumps(counts))
    else:
        print("pruned " + ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items()))
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    action = args.users_command
    try:
        if action == "create":
            password = read_password(args)  # before the event loop: getpass blocks
            return asyncio.run(_create(settings, args, password))
        if action == "list":
            return asyncio.run(_list(settings, args))
        if action == "prune":
            return asyncio.run(_prune(settings, args))
        return asyncio.run(_set_role(settings, args))
    except UsageError as exc:
        print(f"streamflix users {action}: error: {exc}", file=sys.stderr)
        return 2 if "stdin" in str(exc) and "terminal" in str(exc) else 1
