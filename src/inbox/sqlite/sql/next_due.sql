SELECT min(t) FROM (
  SELECT min(available_at) AS t
    FROM intercom_inbox INDEXED BY intercom_inbox_ready WHERE state = 0
  UNION ALL
  SELECT min(lease_until) AS t
    FROM intercom_inbox INDEXED BY intercom_inbox_leased WHERE state = 1)
