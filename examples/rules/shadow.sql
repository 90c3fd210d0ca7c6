-- React to shadow deltas: forward what changed to the device's command topic.
CREATE RULE forward_shadow_delta
  DESCRIPTION 'Send desired-state changes to the device'
AS
  SELECT state, version
  FROM '$aws/things/+/shadow/update/delta'
DO
  republish(topic = 'commands/${topic(3)}', qos = 1,
            userProperties = {'source': 'shadow', 'thing': '${topic(3)}'});
