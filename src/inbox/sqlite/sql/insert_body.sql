INSERT INTO intercom_inbox_body (seq, body) VALUES (:seq, :body)
