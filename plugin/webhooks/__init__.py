"""Outgoing webhooks: signed HTTP posts of timeline entries to the admins' own systems.

``rules`` holds what a webhook may be (its URL, the addresses it may reach, its
events) and how a body is signed; ``service`` the admins' use cases; ``sender`` the
background thread that posts the deliveries the unit of work writes in each
change's own transaction (``plugin.store.webhooks``). docs/webhooks.md tells a
receiver how to check a signature.
"""
