-- Temperature alerts for devices that publish to device/<id>/data.
-- Check with: ferrite rules check examples/rules

/* Republish readings above 30 °C, with the device id taken from the topic,
   and tell an HTTP service about them. */
CREATE RULE high_temperature
  DESCRIPTION 'Alert when a device reports more than 30 degrees'
  SQL VERSION '2016-03-23'
AS
  SELECT topic(2) AS device_id,
         temperature AS reported_temperature,
         30 AS max_temperature,
         timestamp() AS seen_at
  FROM 'device/+/data'
  WHERE temperature > 30
DO
  republish(topic = 'alerts/${topic(2)}/temperature', qos = 1),
  http(url = 'http://127.0.0.1:9000/alerts',
       headers = {'x-device-id': '${topic(2)}'},
       timeoutMs = 2000)
ON ERROR
  log(level = 'warn', message = 'temperature alert for ${topic(2)} failed');

-- Every reading, flattened and converted to Fahrenheit, appended to a file.
CREATE RULE archive_readings
  DESCRIPTION 'Keep every reading as NDJSON'
AS
  SELECT topic(2) AS device_id,
         temperature * 1.8 + 32 AS fahrenheit,
         wind.velocity AS wind_velocity
  FROM 'device/+/data'
DO
  file(path = 'readings/${topic(2)}.ndjson', maxBytes = 10485760, maxFiles = 5);
