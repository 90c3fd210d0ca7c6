CREATE RULE old_style
  SQL VERSION '2015-10-08'
AS SELECT encode(*, 'base64') AS data FROM 'raw/#'
DO republish(topic = 'wrapped');
