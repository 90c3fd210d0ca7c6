CREATE RULE r AS SELECT regexp_replace(name, 'a(b', 'x') AS n FROM 'a' DO log();
