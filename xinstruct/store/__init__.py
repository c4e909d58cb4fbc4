"""The store: xinstruct's one data layer, and the only place with SQL.

Layers, from the bottom:

* `engine` — the DuckDB file: short sessions (`with store.session() as tx`), `store.write(fn)` transactions retried on
  write conflicts, hand-over of the file lock between processes, waits with a deadline (`waiting`), backup/restore.
* `schema` — the migrations (`migrations/NNNN_name.sql`), applied in order by `Store.migrate`.
* one module per table family (documents, candidates, review, curation queries, registry, users, evals): named
  functions that take a `Store` (or a `Tx`, to compose several in one transaction) and return plain rows or small
  typed records. They never import stage types (generate, refine, review rules...): stages, pages and the CLI call
  them, not the other way round.

`from xinstruct.store import Store` keeps working: the engine's public names are re-exported here.
"""

from .engine import (  # noqa: F401
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_DB,
    HOLDS,
    Store,
    Tx,
    default_db_path,
    env_busy_timeout,
    to_json,
    waiting,
)
from .schema import MIGRATIONS  # noqa: F401
