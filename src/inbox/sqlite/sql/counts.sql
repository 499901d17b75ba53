SELECT
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_ready
    WHERE state = 0),
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_leased
    WHERE state = 1),
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_done
    WHERE state = 2),
  (SELECT count(*) FROM intercom_inbox INDEXED BY intercom_inbox_dead
    WHERE state = 3),
  (SELECT min(available_at) FROM intercom_inbox INDEXED BY intercom_inbox_ready
    WHERE state = 0)
