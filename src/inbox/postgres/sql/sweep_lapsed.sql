UPDATE {schema}.inbox
   SET state = CASE WHEN attempts >= $1::integer THEN 3 ELSE 0 END,
       available_at = now(),
       last_error = 'the lease lapsed: the worker crashed, hung or was too slow',
       lease_until = NULL, lease_token = NULL
 WHERE seq = ANY (ARRAY(SELECT seq FROM {schema}.inbox
                         WHERE state = 1 AND lease_until <= now()
                         ORDER BY lease_until LIMIT $2::bigint FOR UPDATE SKIP LOCKED))
   AND state = 1
