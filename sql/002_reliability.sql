-- PgEvents schema, version 2: cursor generations (replay), dead letters and retention.

-- Bumped by every external cursor reset; a running consumer saves its cursor only while the
-- generation it loaded is current, so a reset is never overwritten by an older in-memory cursor.
ALTER TABLE __SCHEMA__.consumers ADD COLUMN generation bigint NOT NULL DEFAULT 0;

-- Everything at or below this position has been deleted by retention. Readers start after it, so
-- a consumer registered later does not mistake the purged range for a hole.
ALTER TABLE __SCHEMA__.settings ADD COLUMN purged_through bigint NOT NULL DEFAULT 0;

-- Events a consumer gave up on under the dead-letter policy, with the last error.
CREATE TABLE __SCHEMA__.dead_letters (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer        text        NOT NULL,
    position        bigint      NOT NULL,
    event_id        bigint      NOT NULL,
    xid             xid8        NOT NULL,
    schema_name     text        NOT NULL,
    table_name      text        NOT NULL,
    operation       text        NOT NULL,
    row_data        jsonb,
    old_row_data    jsonb,
    captured_at     timestamptz NOT NULL,
    committed_at    timestamptz NOT NULL,
    attempts        integer     NOT NULL,
    error           text        NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer, position, event_id)
);
