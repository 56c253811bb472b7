"""Intercom's lists: ``IntercomClient``, its page and ``error.list`` formats, the
10,000-record cap and the Scroll API past it, over the transport of ``_http``."""
