CREATE RULE r
AS SET @limit = 30
   SELECT abs(temperature, 2) AS t, @limt AS l FROM 'a/#' WHERE temperature > @limit
DO log();
