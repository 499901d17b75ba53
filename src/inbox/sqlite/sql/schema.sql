CREATE TABLE IF NOT EXISTS intercom_inbox (
  seq          INTEGER PRIMARY KEY,
  id           TEXT    NOT NULL UNIQUE,
  topic        TEXT    NOT NULL,
  received_at  INTEGER NOT NULL,
  state        INTEGER NOT NULL DEFAULT 0,
  attempts     INTEGER NOT NULL DEFAULT 0,
  available_at INTEGER NOT NULL,
  lease_until  INTEGER,
  lease_token  INTEGER,
  last_error   TEXT,
  done_at      INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS intercom_inbox_ready  ON intercom_inbox(available_at, seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS intercom_inbox_leased ON intercom_inbox(lease_until) WHERE state = 1;
CREATE INDEX IF NOT EXISTS intercom_inbox_done   ON intercom_inbox(done_at) WHERE state = 2;
CREATE INDEX IF NOT EXISTS intercom_inbox_dead   ON intercom_inbox(seq) WHERE state = 3;
CREATE TABLE IF NOT EXISTS intercom_inbox_body (
  seq          INTEGER PRIMARY KEY,
  body         BLOB    NOT NULL
) STRICT;
