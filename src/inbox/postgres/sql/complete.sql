WITH done AS (
  UPDATE {schema}.inbox
     SET state = 2, done_at = now(), last_error = NULL, lease_until = NULL, lease_token = NULL
   WHERE id_key = sha256($1::bytea) AND id = $1::bytea AND state = 1 AND lease_token = $2::bigint
  RETURNING seq
), dropped AS (
  DELETE FROM {schema}.inbox_body AS b USING done WHERE b.seq = done.seq
)
SELECT count(*) FROM done
