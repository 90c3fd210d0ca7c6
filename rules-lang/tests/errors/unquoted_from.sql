CREATE RULE r AS SELECT * FROM topic/# DO log();
