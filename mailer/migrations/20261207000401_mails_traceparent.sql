-- The W3C traceparent of the request that queued each mail, so its SMTP
-- send joins that request's trace.
ALTER TABLE mails ADD COLUMN traceparent TEXT;
