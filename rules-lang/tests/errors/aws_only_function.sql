CREATE RULE lookup
AS SELECT get_dynamodb('Devices', 'id', topic(2), 'arn:aws:iam::123456789012:role/r') AS d FROM 'd/+'
DO log();
