DELETE FROM intercom_inbox_body WHERE seq = :seq
