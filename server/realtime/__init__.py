"""The real-time socket and what it carries (docs/realtime.md). Read in this order:
`protocol.py` (messages, close codes, the inbound limit; pure), `hub.py` (this process's
sockets and the Redis pub/sub fan-out between processes), `slots.py` (the socket limits per
account and per address, shared by every process in Redis), `socket.py` (`GET /api/v1/ws`:
the checks before the upgrade, auth, the read and write loops), `producer.py` (title events
into notifications, published through the hub), `parties.py` (watch parties in Redis, and
clock sync). The routes are declared in `server/api/realtime.py`, `server/api/notifications.py`,
`server/api/parties.py` and `server/api/comments.py`."""
