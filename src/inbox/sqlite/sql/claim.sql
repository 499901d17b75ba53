UPDATE intercom_inbox
        SET state = 1, attempts = attempts + 1,
            lease_until = :now + :lease, lease_token = :token
      WHERE seq IN (SELECT seq FROM intercom_inbox INDEXED BY intercom_inbox_ready
                     WHERE state = 0 AND available_at <= :now
                     ORDER BY available_at, seq LIMIT :n)
  RETURNING seq, id, topic, received_at, attempts
