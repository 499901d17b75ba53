UPDATE intercom_inbox
    SET state = 2, done_at = :now, last_error = NULL,
        lease_until = NULL, lease_token = NULL
  WHERE id = :id AND state = 1 AND lease_token = :token
  RETURNING seq
