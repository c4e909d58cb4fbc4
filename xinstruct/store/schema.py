"""The schema: named, ordered migrations, one SQL file each in `migrations/`, applied once each by `Store.migrate`.

A migration's name is its file name without `.sql`; they apply in name order, each in its own transaction, and are
recorded in the `migrations` table. Never edit a migration that has shipped: add a new file with the next number.
"""

from __future__ import annotations

from importlib import resources


def _load() -> list[tuple[str, str]]:
    folder = resources.files(__package__) / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name[: -len(".sql")], f.read_text(encoding="utf-8")) for f in files]


MIGRATIONS: list[tuple[str, str]] = _load()


def statements(sql: str) -> list[str]:
    """Split a migration into statements (comments start with '--'; no ';' or '--' inside strings)."""
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]
