"""``warden <command> …``: the control plane's processes, thin over their own launchers.

    warden serve [--host H] [--port P] [--workers N]   the web process (uvicorn, ASGI)
    warden worker [celery worker options]               a Celery worker
    warden beat [celery beat options]                   the Celery scheduler
    warden demo [options]                               the embedded demo (warden_demo)
    warden audit verify|export [options]                audit_verify / audit_export
    warden keys status|rotate-field-key|...             key material and rotation (keys)
    warden version                                      the release version
    warden <management command> [options]               migrate, createsuperuser, scan, ...

Settings come from the environment (config/settings.py), as for ``manage.py``.
"""

from __future__ import annotations

import argparse
import os
import sys

from agent.version import VERSION

SETTINGS_MODULE = "config.settings"
# `warden audit verify` → the management command audit_verify.
AUDIT_COMMANDS = {
    "verify": "audit_verify",
    "export": "audit_export",
    "tag-index": "audit_tag_index",
}


def serve(argv: list[str]) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="warden serve", description="the web process")
    parser.add_argument("--host", default=os.environ.get("WARDEN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    # Channels' router answers no ASGI lifespan events.
    uvicorn.run(
        "config.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        lifespan="off",
        log_level=args.log_level,
        proxy_headers=True,
    )
    return 0


def celery(subcommand: str, argv: list[str]) -> int:
    from config.celery import app

    return int(app.start([subcommand, *argv]) or 0)


def demo(argv: list[str]) -> int:
    from warden_demo.launcher import main as demo_main

    return demo_main(argv)


def manage(argv: list[str]) -> int:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["warden", *argv])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    command, rest = (args[0], args[1:]) if args else ("help", [])
    if command in ("--version", "version"):
        print(VERSION)
        return 0
    if command in ("-h", "--help"):
        print(__doc__)
        return 0
    if command == "serve":
        return serve(rest)
    if command in ("worker", "beat"):
        return celery(command, rest)
    if command == "demo":
        return demo(rest)
    if command == "audit":
        if not rest or rest[0] not in AUDIT_COMMANDS:
            print("usage: warden audit verify|export [options]", file=sys.stderr)
            return 2
        return manage([AUDIT_COMMANDS[rest[0]], *rest[1:]])
    return manage(args)
