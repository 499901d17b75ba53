DELETE FROM {schema}.inbox
 WHERE seq = ANY (ARRAY(SELECT seq FROM {schema}.inbox
                         WHERE state = 2 AND done_at < now() - $1::bigint * interval '1 millisecond'
                         ORDER BY done_at LIMIT $2::bigint FOR UPDATE SKIP LOCKED))
   AND state = 2
