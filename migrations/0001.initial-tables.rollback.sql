DROP TABLE qiwi_transaction;
DROP TABLE qiwi_http_log;
