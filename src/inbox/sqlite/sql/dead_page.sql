SELECT seq, id, topic,
        (SELECT body FROM intercom_inbox_body AS b WHERE b.seq = n.seq),
        received_at, attempts, last_error
   FROM intercom_inbox AS n INDEXED BY intercom_inbox_dead
  WHERE state = 3 AND seq > :after
  ORDER BY seq LIMIT :n
