-- One statement, one round trip: lapsed leases taken over (or dead after
-- the last attempt), due notifications leased, and when the next one is
-- due. $1 lease (ms), $2 token, $3 most leases, $4 most attempts.
WITH lapsed AS MATERIALIZED (
  -- A crashed, hung or too slow worker's attempt counts as failed. Locked,
  -- each row is read at its current version: a lease completed meanwhile
  -- no longer matches, and is never taken back. The rows locked here and
  -- in `pending` stay as read until the statement's end: the updates
  -- below need not check them again.
  SELECT seq, attempts FROM {schema}.inbox
   WHERE state = 1 AND lease_until <= now()
   ORDER BY lease_until LIMIT $3::bigint
     FOR UPDATE SKIP LOCKED
), pending AS MATERIALIZED (
  -- Only as many as the lapsed ones left room for.
  SELECT seq FROM {schema}.inbox
   WHERE state = 0 AND available_at <= now()
   ORDER BY available_at, seq
   LIMIT $3::bigint - (SELECT count(*) FROM lapsed WHERE attempts < $4::integer)
     FOR UPDATE SKIP LOCKED
), dead AS (
  UPDATE {schema}.inbox
     SET state = 3, available_at = now(),
         last_error = 'the lease lapsed: the worker crashed, hung or was too slow',
         lease_until = NULL, lease_token = NULL
   WHERE seq = ANY (ARRAY(SELECT seq FROM lapsed WHERE attempts >= $4::integer))
), leased AS (
  UPDATE {schema}.inbox
     SET last_error = CASE WHEN state = 1
                           THEN 'the lease lapsed: the worker crashed, hung or was too slow'
                           ELSE last_error END,
         state = 1, attempts = attempts + 1,
         lease_until = now() + $1::bigint * interval '1 millisecond',
         lease_token = $2::bigint
   WHERE seq = ANY (ARRAY(SELECT seq FROM lapsed WHERE attempts < $4::integer
                          UNION ALL SELECT seq FROM pending))
  RETURNING seq, id, topic, received_at, attempts
), next_due AS (
  -- The statement's snapshot is from before its own updates: the rows it
  -- took still look as they were, and are left out.
  SELECT (extract(epoch FROM least(
            (SELECT available_at FROM {schema}.inbox
              WHERE state = 0 AND seq <> ALL (ARRAY(SELECT seq FROM pending))
              ORDER BY available_at LIMIT 1),
            (SELECT lease_until FROM {schema}.inbox
              WHERE state = 1 AND seq <> ALL (ARRAY(SELECT seq FROM lapsed))
              ORDER BY lease_until LIMIT 1)) - now()) * 1000)::float8
         AS millis
), unsynced AS (
  -- The claim's commit does not wait for the write-ahead log's flush: a
  -- claim lost with the server leaves its notifications pending, to be
  -- claimed again, and the lease token fences the worker that had them.
  -- Every completion is synced, and with it the claim before it.
  SELECT set_config('synchronous_commit', 'off', true)
)
SELECT leased.seq, leased.id, leased.topic, leased.received_at, leased.attempts,
       (SELECT body FROM {schema}.inbox_body AS b WHERE b.seq = leased.seq),
       next_due.millis
  FROM unsynced, next_due LEFT JOIN leased ON true
