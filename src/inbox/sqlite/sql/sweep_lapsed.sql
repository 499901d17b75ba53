UPDATE intercom_inbox INDEXED BY intercom_inbox_leased
    SET state = CASE WHEN attempts >= :max THEN 3 ELSE 0 END,
        available_at = :now,
        last_error = 'the lease lapsed: the worker crashed, hung or was too slow',
        lease_until = NULL, lease_token = NULL
  WHERE state = 1 AND lease_until <= :now
