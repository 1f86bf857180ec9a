"""Idempotency-Key for POSTs that create things, so a retried request creates one thing."""
