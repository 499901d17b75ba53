INSERT INTO intercom_inbox (id, topic, received_at, available_at)
  VALUES (:id, :topic, :received_at, :now)
  ON CONFLICT (id) DO NOTHING
