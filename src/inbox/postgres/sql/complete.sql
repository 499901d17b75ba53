WITH input AS (
  SELECT * FROM unnest($1::bytea[], $2::bigint[]) AS input (id, token)
), locked AS (
  -- Locked in the order of seq, in every batch: two batches never wait
  -- for each other's rows.
  SELECT n.seq, input.id, input.token
    FROM input JOIN {schema}.inbox AS n ON n.id_key = sha256(input.id) AND n.id = input.id
   WHERE n.state = 1 AND n.lease_token = input.token
   ORDER BY n.seq
     FOR UPDATE OF n
), done AS (
  UPDATE {schema}.inbox AS n
     SET state = 2, done_at = now(), last_error = NULL, lease_until = NULL, lease_token = NULL
    FROM locked
   WHERE n.seq = locked.seq AND n.state = 1 AND n.lease_token = locked.token
  RETURNING n.seq, locked.id, locked.token
), dropped AS (
  DELETE FROM {schema}.inbox_body AS b USING done WHERE b.seq = done.seq
)
SELECT id, token FROM done
