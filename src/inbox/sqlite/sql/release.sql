UPDATE intercom_inbox
    SET state = 0, attempts = max(attempts - 1, 0), available_at = :now,
        lease_until = NULL, lease_token = NULL
  WHERE id = :id AND state = 1 AND lease_token = :token
