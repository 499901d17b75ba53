UPDATE {schema}.inbox
   SET state = 0, attempts = 0, available_at = now(), last_error = NULL
 WHERE id_key = sha256($1::bytea) AND id = $1::bytea AND state = 3
