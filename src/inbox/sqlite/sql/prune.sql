DELETE FROM intercom_inbox WHERE seq IN
  (SELECT seq FROM intercom_inbox INDEXED BY intercom_inbox_done
    WHERE state = 2 AND done_at < :before LIMIT :n)
