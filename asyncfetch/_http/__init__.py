"""The HTTP layer: one session, the concurrency gate, the rate budget, retries, timeouts.

Knows nothing of Intercom: what an error body says is read by a decoder the
API layer hands to ``Transport`` (``decode_error=``), so any page-numbered JSON
API can use the same transport.
"""
