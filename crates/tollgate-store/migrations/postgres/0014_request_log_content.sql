-- The prompt and the answer of a request whose copy's policy keeps them (`log_content`, off by
-- default), each cut at 32 KiB; NULL for every other request.
ALTER TABLE request_logs ADD COLUMN request_content TEXT;
ALTER TABLE request_logs ADD COLUMN response_content TEXT;
