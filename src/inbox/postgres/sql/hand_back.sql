-- The leases of a claim whose caller stopped waiting before its answer
-- came: pending again at once, the attempt not counted (as a release).
UPDATE {schema}.inbox
   SET state = 0, attempts = greatest(attempts - 1, 0), available_at = now(),
       lease_until = NULL, lease_token = NULL
 WHERE seq = ANY ($1::bigint[]) AND state = 1 AND lease_token = $2::bigint
