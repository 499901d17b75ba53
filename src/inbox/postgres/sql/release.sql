UPDATE {schema}.inbox
   SET state = 0, attempts = greatest(attempts - 1, 0), available_at = now(),
       lease_until = NULL, lease_token = NULL
 WHERE id_key = sha256($1::bytea) AND id = $1::bytea AND state = 1 AND lease_token = $2::bigint
