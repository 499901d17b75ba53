UPDATE intercom_inbox
    SET state = 0, attempts = 0, available_at = :now, last_error = NULL
  WHERE id = :id AND state = 3
