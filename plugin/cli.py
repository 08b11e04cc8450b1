"""The console entry point: ``incident-plugin serve|migrate|settings|users|chat|bundle|telemetry docs``."""
from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

from plugin.settings import Settings, SettingsError, load_settings

log = logging.getLogger("plugin.cli")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_workers() -> int:
    """Two workers per core, plus one, capped for small machines."""
    return min(2 * (os.cpu_count() or 1) + 1, 9)


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(getattr(args, "config", None))
    except SettingsError as exc:
        print(f"incident-plugin: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def settings_with_saved(settings: Settings, db: Any) -> Settings:
    """The settings with the values saved through the API or the CLI applied (what the workers will use)."""
    with db.unit_of_work(write=False) as uow:
        return settings.with_saved(uow.saved_settings.all())


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the schema migrations to the configured database."""
    from plugin.store import Database, migrate
    from plugin.store.migrate import current_revision

    settings = _settings(args)
    db = Database(settings.database_url)
    migrate(db)
    print(f"database at revision {current_revision(db)}")
    db.dispose()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server under gunicorn."""
    from gunicorn.app.base import BaseApplication

    from plugin.app import create_app
    from plugin.front import server_options
    from plugin.store import Database, migrate

    settings = _settings(args)
    # Migrate once in the master, before the workers start.
    db = Database(settings.database_url)
    migrate(db)
    effective = settings_with_saved(settings, db)
    db.dispose()
    if not is_loopback(args.host) and not effective.host_secret:
        print(f"incident-plugin: refusing to listen on {args.host} without a host secret: set HostSecret "
              "(INCIDENT_HOST_SECRET, or incident-plugin settings set HostSecret ...) so that only the chat "
              "host can call the API, or listen on 127.0.0.1.", file=sys.stderr)
        return 2

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                # Listening address, processes, and the worker class that reads requests whole.
                **server_options(args.host, args.port, args.workers, args.threads, args.client_timeout,
                                 stopping=_stop_sending_telemetry),
                "accesslog": None,
                "loglevel": "info",
                # Several servers may run on one machine; a shared control socket
                # path would collide, and nothing here needs it.
                "control_socket_disable": True,
                # In the worker, as it exits: its background threads stopped, each within a bound.
                "worker_exit": _stop_background_work,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Each worker builds its own app after the fork: no engine, pool or
            # thread is shared across processes.
            return create_app(settings, migrate_db=False)

    Server().run()
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    """Show the settings in force, or save one (as the API does, without a restart of this command)."""
    from plugin.errors import DomainError
    from plugin.settings import LiveSettings
    from plugin.settings_admin import SettingsAdmin
    from plugin.store import Database, migrate

    settings = _settings(args)
    db = Database(settings.database_url)
    try:
        migrate(db)
        admin = SettingsAdmin(LiveSettings(settings), db.unit_of_work)
        admin.load()
        if args.action == "set":
            try:
                admin.apply({args.key: args.value}, origin="command line")
            except DomainError as exc:
                print(f"incident-plugin: {exc.message}", file=sys.stderr)
                return 2
            print(f"{args.key} saved; running servers apply it from their next request on.")
        rows = admin.describe()
        width = max(len(row["key"]) for row in rows)
        for row in rows:
            note = " (read-only: " + ("environment" if row["source"] == "environment" else "needs a restart") + ")" \
                if row["read_only"] else ""
            print(f"{row['key']:<{width}}  {json.dumps(row['value'])}  [{row['source']}]{note}")
    finally:
        db.dispose()
    return 0


def _on_console(args: argparse.Namespace, action: Callable[[Any], None], team_id: str | None = None) -> int:
    """Run action on a Console of the local chat host over the configured database (migrated).

    This process sends no telemetry: its events wait in the outbox for a server. A refusal
    prints its message and exits with 2.
    """
    from plugin.app import build_components
    from plugin.command.console import DEFAULT_TEAM, Console
    from plugin.errors import DomainError

    components = build_components(_settings(args), send_telemetry=False, scan_reminders=False,
                                  send_webhooks=False)
    try:
        action(Console(components, team_id or DEFAULT_TEAM))
    except DomainError as exc:
        print(f"incident-plugin: {exc.message}", file=sys.stderr)
        return 2
    finally:
        components.db.dispose()
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    """Add a user to the local chat host (optionally as a system admin), or list them."""

    def add(console: Any) -> None:
        user_id = console.user(args.username)
        if args.admin:
            admins = sorted(console.components.settings.current.admin_user_ids | {user_id})
            console.components.settings_admin.apply({"AdminUserIds": ",".join(admins)}, origin="command line")
        print(f"{args.username.lstrip('@').lower()} {user_id}{' (system admin)' if args.admin else ''}")

    def show(console: Any) -> None:
        admins = console.components.settings.current.admin_user_ids
        for username, user_id in console.host.users():
            print(f"{username} {user_id}{' (system admin)' if user_id in admins else ''}")

    return _on_console(args, add if args.action == "add" else show)


def cmd_chat(args: argparse.Namespace) -> int:
    """Type /incident commands as a user of the local chat host (one command, or lines from stdin)."""

    def chat(console: Any) -> None:
        where = console.where(args.user, args.channel)
        if args.line:
            console.run(where, " ".join(args.line))
            return
        interactive = sys.stdin.isatty()
        if interactive:
            print("Type /incident commands (`/incident help`); `:user NAME` and `:channel NAME` change who "
                  "types and where; Ctrl-D ends.")
        console.session(where, _lines(console, where) if interactive else sys.stdin, echo=not interactive)

    return _on_console(args, chat, args.team)


def _lines(console: Any, where: Any) -> Any:
    """Lines typed at a prompt until end of input."""
    while True:
        try:
            yield input(console.prompt(where))
        except EOFError:
            return


def cmd_bundle(args: argparse.Namespace) -> int:
    """Write the distributable plugin bundle."""
    from plugin.bundle import DEFAULT_TARGETS, BundleError, write_bundle

    try:
        path = write_bundle(args.output, targets=tuple(args.target or DEFAULT_TARGETS))
    except BundleError as exc:
        print(f"incident-plugin: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


def _stop_sending_telemetry() -> None:
    """A stopping worker sends no more telemetry, at once: a switch turned off from now on could not reach it."""
    from plugin.telemetry.dispatcher import stop_all

    stop_all(timeout=0)


def _stop_background_work(_server: Any, _worker: Any) -> None:
    from plugin.reminders import stop_all as stop_reminders
    from plugin.telemetry.dispatcher import stop_all as stop_telemetry

    from plugin.egress import stop_all as stop_egress
    from plugin.webhooks.rules import shutdown_all as stop_lookups
    from plugin.webhooks.sender import stop_all as stop_webhooks

    stop_reminders(timeout=2.0)
    stop_webhooks(timeout=3.0)
    stop_lookups()
    stop_telemetry(timeout=5.0)
    stop_egress(timeout=2.0)


def cmd_telemetry_docs(args: argparse.Namespace) -> int:
    """Write the collected-data page from the event catalogue (or check it is current)."""
    from plugin.telemetry.docs import render

    page = render()
    path = Path(args.output)
    if args.check:
        if not path.exists() or path.read_text(encoding="utf-8") != page:
            print(f"incident-plugin: {path} differs from the event catalogue; run "
                  "`incident-plugin telemetry docs` and commit the result.", file=sys.stderr)
            return 1
        print(f"{path} matches the event catalogue")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help="JSON file of settings (between plugin.json defaults and INCIDENT_* variables)")
    parser = argparse.ArgumentParser(prog="incident-plugin", parents=[common], description=(
        "Run the incident server, migrate its database, read its settings, manage the local chat host's users, "
        "type /incident commands in a terminal, build the Mattermost plugin bundle, or write the telemetry docs."))
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server", parents=[common],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on; beyond loopback only with HostSecret set")
    serve.add_argument("--port", type=int, default=9065, help="TCP port to listen on")
    serve.add_argument("--workers", type=int, default=default_workers(),
                       help="worker processes (2 x cores + 1, at most 9)")
    serve.add_argument("--threads", type=int, default=4, help="request threads per worker")
    serve.add_argument("--client-timeout", type=int, default=10, metavar="SECONDS",
                       help="close a connection silent this long mid-request or between requests")
    serve.set_defaults(func=cmd_serve)
    mig = commands.add_parser("migrate", help="apply database migrations", parents=[common])
    mig.set_defaults(func=cmd_migrate)
    settings = commands.add_parser("settings", help="show the settings, or save one in the database",
                                   parents=[common])
    actions = settings.add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="every setting, its value (secrets masked) and source", parents=[common])
    setter = actions.add_parser("set", help="save one setting: set KEY VALUE (checked like at start-up)",
                                parents=[common])
    setter.add_argument("key", help="the setting's key, e.g. MaxBodyBytes")
    setter.add_argument("value", help="its new value, e.g. 1048576")
    settings.set_defaults(func=cmd_settings)
    users = commands.add_parser("users", help="the local chat host's users: add one, or list them",
                                parents=[common])
    user_actions = users.add_subparsers(dest="action", required=True)
    adder = user_actions.add_parser("add", help="add a user (prints its id)", parents=[common])
    adder.add_argument("username", help="e.g. bob")
    adder.add_argument("--admin", action="store_true", help="also make the user a system admin (AdminUserIds)")
    user_actions.add_parser("list", help="every user with its id", parents=[common])
    users.set_defaults(func=cmd_users)
    chat = commands.add_parser(
        "chat", help="type /incident commands as a local user", parents=[common],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Run /incident commands against the local chat host as USER in CHANNEL: the command "
                    "given, or every line read from stdin. A username not seen before is created.")
    chat.add_argument("--user", default="alice", help="who types (a username)")
    chat.add_argument("--channel", default="town-square", help="where, by channel name (~name) or id")
    chat.add_argument("--team", default="team0000000000000000000000", help="the team's id")
    chat.add_argument("line", nargs="*", help="one command, e.g. /incident start db is down")
    chat.set_defaults(func=cmd_chat)
    bundle = commands.add_parser("bundle", help="write dist/<id>-<version>.tar.gz", parents=[common])
    bundle.add_argument("--output", default="dist", help="folder to write the bundle to (default: dist)")
    bundle.add_argument("--target", action="append", metavar="OS-ARCH",
                        help="a platform to build for, repeatable: linux-amd64 (the default), linux-arm64")
    bundle.set_defaults(func=cmd_bundle)
    telemetry = commands.add_parser("telemetry", help="telemetry tools", parents=[common])
    telemetry_commands = telemetry.add_subparsers(dest="telemetry_command", required=True)
    docs = telemetry_commands.add_parser("docs", help="generate docs/telemetry.md from the event catalogue")
    docs.add_argument("--output", default="docs/telemetry.md", help="where to write the page")
    docs.add_argument("--check", action="store_true", help="only check that the page is current (exit 1 if not)")
    docs.set_defaults(func=cmd_telemetry_docs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI."""
    args = build_parser().parse_args(argv)
    # A server logs what it does; the other commands print their result, and only problems besides.
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Alembic reports every migration step at INFO; only its problems matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
