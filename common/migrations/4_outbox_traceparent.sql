-- The W3C traceparent of the request that wrote each message, so its
-- delivery (and what the receiver does with it) joins that request's trace.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
