"""Requests the server makes on its users' behalf: webhook deliveries (`webhooks.py`), through
an HTTP client whose resolver refuses non-public addresses (`client.py`, media/outbound.py)."""
