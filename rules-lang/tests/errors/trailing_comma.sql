CREATE RULE r
AS SELECT temperature, humidity, FROM 'device/+/data'
DO log();
