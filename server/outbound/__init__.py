"""Requests the server makes on its users' behalf: webhook deliveries (`webhooks.py`), through
an HTTP client whose resolver refuses non-public addresses (transcoder/outbound.py, media/outbound.py)."""
