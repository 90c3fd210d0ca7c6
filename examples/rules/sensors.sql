-- SenML-style batches: {"e": [{"n": "temperature", "v": 22.5}, ...]}
-- SET names values once; nested SELECT picks array elements.
CREATE RULE senml_summary
  DESCRIPTION 'Names and the temperature of each SenML batch'
AS
  SET @batch = e
  SELECT (SELECT VALUE n FROM @batch) AS sensors,
         get((SELECT v FROM @batch WHERE n = 'temperature'), 0).v AS temperature,
         CASE get((SELECT VALUE u FROM @batch WHERE n = 'temperature'), 0)
           WHEN 'Cel' THEN 'celsius'
           WHEN 'Far' THEN 'fahrenheit'
           ELSE 'unknown'
         END AS unit
  FROM 'senml/+'
  WHERE isUndefined(e) = false
DO
  republish(topic = 'summary/${topic(2)}'),
  log(level = 'info');

-- Binary payloads: encode the raw bytes so a JSON consumer can carry them.
CREATE RULE binary_passthrough
  DESCRIPTION 'Wrap raw payloads in JSON'
AS
  SELECT encode(*, 'base64') AS data, clientid() AS client, timestamp() AS ts
  FROM 'raw/#'
DO
  republish(topic = 'wrapped/${topic(2)}');
