SELECT seq, id, topic,
       (SELECT body FROM {schema}.inbox_body AS b WHERE b.seq = n.seq),
       received_at, attempts, last_error
  FROM {schema}.inbox AS n
 WHERE state = 3 AND seq > $1::bigint
 ORDER BY seq LIMIT $2::bigint
