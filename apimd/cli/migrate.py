"""`apimd migrate --to postgresql://…`: move the SQLite store into an empty PostgreSQL database
(SPEC §13), then point the daemon at it with APIMD_DATABASE_URL."""

from __future__ import annotations

import argparse
from pathlib import Path

from apimd.cli import UsageError
from apimd.dburl import describe_url, is_postgres_url, url_scheme
from apimd.settings import Settings, foreign_state


async def migrate_command(settings: Settings, args: argparse.Namespace) -> int:
    from apimd.cli.run import open_owned_store, sqlite_file_problem
    from apimd.store import StoreError
    from apimd.store.transfer import copy_database

    if not is_postgres_url(args.to):
        # Not echoed: a URL of another database may hold a password too.
        scheme = url_scheme(args.to)
        given = f"a {scheme}:// URL" if scheme else "not a URL"
        raise UsageError(f"--to: {given}; expected a postgresql://user@host:port/database URL")
    source_path = Path(args.source) if args.source else settings.db_path
    if not source_path.is_file():
        raise UsageError(f"--from {source_path}: no SQLite store there")
    unsafe = foreign_state(settings)  # first, as every command that opens the store does
    if unsafe is not None:
        raise UsageError(f"migrate: {unsafe}")
    # Checked before opening it, which would make a lock file beside it (and migrate an empty
    # file into a new store).
    problem = sqlite_file_problem(source_path) or (
        f"{source_path} is empty" if source_path.stat().st_size == 0 else None
    )
    if problem is not None:
        raise UsageError(f"--from: {problem}; give the daemon's SQLite store (apimd.db)")
    target_name = describe_url(args.to)
    # As owner: a daemon still writing to the SQLite store would be copied half-way.
    source = await open_owned_store(
        source_path, "migrate", settings, instead="or give another SQLite file with --from"
    )
    try:
        target = await open_owned_store(
            args.to, "migrate", settings, instead="or give another database with --to"
        )
        try:
            counts = await copy_database(source.db, target.db)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        finally:
            await target.close()
    finally:
        await source.close()
    print(f"copied {source_path} into the {target_name}; row counts verified:")
    for count in counts:
        print(f"  {count.table:<17} {count.target}")
    print("Run the daemon on it with APIMD_DATABASE_URL set to that URL (the same secret key).")
    return 0
