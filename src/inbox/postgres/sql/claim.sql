WITH leased AS (
  UPDATE {schema}.inbox
     SET state = 1, attempts = attempts + 1,
         lease_until = now() + $1::bigint * interval '1 millisecond',
         lease_token = $2::bigint
   WHERE seq = ANY (ARRAY(SELECT seq FROM {schema}.inbox
                           WHERE state = 0 AND available_at <= now()
                           ORDER BY available_at, seq LIMIT $3::bigint
                           FOR UPDATE SKIP LOCKED))
     AND state = 0
  RETURNING seq, id, topic, received_at, attempts
)
SELECT seq, id, topic, received_at, attempts,
       (SELECT body FROM {schema}.inbox_body AS b WHERE b.seq = leased.seq)
  FROM leased
