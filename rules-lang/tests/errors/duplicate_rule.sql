CREATE RULE same AS SELECT * FROM 'a' DO log();
CREATE RULE same AS SELECT * FROM 'b' DO log();
