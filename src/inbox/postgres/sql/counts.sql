SELECT (SELECT count(*) FROM {schema}.inbox WHERE state = 0),
       (SELECT count(*) FROM {schema}.inbox WHERE state = 1),
       (SELECT count(*) FROM {schema}.inbox WHERE state = 2),
       (SELECT count(*) FROM {schema}.inbox WHERE state = 3)
