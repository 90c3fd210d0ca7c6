CREATE RULE archive
AS SELECT * FROM 'a/#'
DO s3(bucketName = 'archive', key = '${topic()}');
