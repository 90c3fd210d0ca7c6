CREATE RULE r SQL VERSION '2017-01-01'
AS SELECT * FROM 'a'
DO republish(topic = 'b', qos = 7);
