CREATE TABLE {schema}.inbox (
  seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id           bytea       NOT NULL,
  id_key       bytea       NOT NULL GENERATED ALWAYS AS (sha256(id)) STORED,
  topic        bytea       NOT NULL,
  received_at  timestamptz NOT NULL,
  state        smallint    NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 3),
  attempts     integer     NOT NULL DEFAULT 0,
  available_at timestamptz NOT NULL,
  lease_until  timestamptz,
  lease_token  bigint,
  last_error   text,
  done_at      timestamptz,
  CONSTRAINT inbox_id_key UNIQUE (id_key)
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
COMMENT ON TABLE {schema}.inbox IS
  'tower-intercom: one row per notification; state 0 pending, 1 in progress, 2 done, 3 dead';
CREATE INDEX inbox_ready  ON {schema}.inbox (available_at, seq) WHERE state = 0;
CREATE INDEX inbox_leased ON {schema}.inbox (lease_until) WHERE state = 1;
CREATE INDEX inbox_done   ON {schema}.inbox (done_at) WHERE state = 2;
CREATE INDEX inbox_dead   ON {schema}.inbox (seq) WHERE state = 3;
CREATE TABLE {schema}.inbox_body (
  seq  bigint PRIMARY KEY REFERENCES {schema}.inbox (seq) ON DELETE CASCADE,
  body bytea  NOT NULL
);
COMMENT ON TABLE {schema}.inbox_body IS
  'tower-intercom: the exact verified bytes of each notification not yet done';
