"""Drives Segment's official analytics-python client against a Touchstone server.

Usage: segment_client.py HOST WRITE_KEY
Sends every call type with known messageIds, then sends one of them again (a client retry),
and prints a JSON summary: the messageIds sent and any errors the client reported.
Exit status 3 when the package is not importable (the test skips then).
"""
import json
import sys

try:
    from segment.analytics import Client
except ImportError:
    sys.exit(3)

host, write_key = sys.argv[1], sys.argv[2]
errors = []
client = Client(write_key, host=host, max_retries=5, on_error=lambda e, batch: errors.append(repr(e)))

sent = []
def sent_id(mid):
    sent.append(mid)
    return mid

client.identify("py-user", {"email": "py@example.com", "plan": "pro"}, message_id=sent_id("py-identify"))
client.track("py-user", "Product Viewed", {"product_id": "p-1", "price": 9.5}, message_id=sent_id("py-track"))
client.page("py-user", "Docs", "Getting Started", {"path": "/docs"}, message_id=sent_id("py-page"))
client.screen("py-user", "App", "Cart", {"items": 2}, message_id=sent_id("py-screen"))
client.group("py-user", "py-group", {"name": "Acme"}, message_id=sent_id("py-group"))
client.alias("py-anon", "py-user", message_id=sent_id("py-alias"))
client.track(anonymous_id="py-anon", event="Cart Viewed", properties={"cart_id": "c-1"}, message_id=sent_id("py-anon-track"))
client.flush()

# A retry of a message already delivered: the same messageId again. When the server's rate
# limit answers 429 with Retry-After, the client waits and retries the upload as well.
client.track("py-user", "Product Viewed", {"product_id": "p-1", "price": 9.5}, message_id="py-track")
client.flush()
client.shutdown()

print(json.dumps({"sent": sent, "errors": errors}))
