CREATE RULE r
AS SELECT lenght(name) AS n FROM 'devices/+'
DO log();
