CREATE RULE r
AS SELECT * FROM 'a/+'
DO republish(topic = 'out/${topc(2)}');
