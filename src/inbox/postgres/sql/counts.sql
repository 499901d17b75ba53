SELECT (SELECT count(*) FROM {schema}.inbox WHERE state = 0),
       (SELECT count(*) FROM {schema}.inbox WHERE state = 1),
       (SELECT count(*) FROM {schema}.inbox WHERE state = 2),
       (SELECT count(*) FROM {schema}.inbox WHERE state = 3),
       -- How long ago the earliest pending one became due (negative: a
       -- retry still waiting out its backoff), by Postgres's clock.
       (SELECT extract(epoch FROM now() - min(available_at)) * 1000
          FROM {schema}.inbox WHERE state = 0)::float8
