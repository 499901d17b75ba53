UPDATE intercom_inbox
    SET state = CASE WHEN :retry_at IS NULL THEN 3 ELSE 0 END,
        available_at = coalesce(:retry_at, available_at),
        last_error = :error, lease_until = NULL, lease_token = NULL
  WHERE id = :id AND state = 1 AND lease_token = :token
