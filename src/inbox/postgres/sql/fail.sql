UPDATE {schema}.inbox
   SET state = CASE WHEN $3::bigint IS NULL THEN 3 ELSE 0 END,
       available_at = coalesce(now() + $3::bigint * interval '1 millisecond', available_at),
       last_error = $4::text,
       lease_until = NULL, lease_token = NULL
 WHERE id_key = sha256($1::bytea) AND id = $1::bytea AND state = 1 AND lease_token = $2::bigint
