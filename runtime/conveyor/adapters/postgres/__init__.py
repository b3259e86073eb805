"""PostgreSQL adapters (psycopg 3, async, pooled): the record store with its transactional outbox and history,
and the timeout store. Create the schema first with `conveyor db migrate` (or `await migrate(dsn)`)."""

from conveyor.adapters.postgres._schema import migrate
from conveyor.adapters.postgres._store import PostgresRecordStore
from conveyor.adapters.postgres._timeouts import PostgresTimeoutStore

__all__ = ["PostgresRecordStore", "PostgresTimeoutStore", "migrate"]
