DROP INDEX IF EXISTS intercom_inbox_state;
CREATE TABLE intercom_inbox_body (
  seq          INTEGER PRIMARY KEY,
  body         BLOB    NOT NULL
) STRICT;
INSERT INTO intercom_inbox_body (seq, body)
  SELECT seq, body FROM intercom_inbox WHERE body IS NOT NULL;
ALTER TABLE intercom_inbox DROP COLUMN body;
