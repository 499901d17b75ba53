WITH input AS (
  SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::timestamptz[], $4::bytea[])
    AS input (id, topic, received_at, body)
), stored AS (
  INSERT INTO {schema}.inbox (id, topic, received_at, available_at)
  SELECT id, topic, received_at, now() FROM input ORDER BY id
  ON CONFLICT (id_key) DO NOTHING
  RETURNING seq, id
), bodies AS (
  INSERT INTO {schema}.inbox_body (seq, body)
  SELECT stored.seq, input.body FROM stored JOIN input ON input.id = stored.id
)
SELECT stored.id, pg_notify($5, $6) FROM stored
