SELECT (extract(epoch FROM least(
          (SELECT min(available_at) FROM {schema}.inbox WHERE state = 0),
          (SELECT min(lease_until) FROM {schema}.inbox WHERE state = 1)) - now()) * 1000)::float8
