"""The origin: what answers `/stream/{title_id}/{version}/...` (HLS and DASH playlists, init
and media segments) and nothing else. Read it top-down, in this order:

1. `routes.py`: the route table and URL parsing (pure), for aiohttp's router and the fast
   protocol's matcher alike.
2. `representation.py`: a cached response's fields, and what it answers to a request's Range
   and preconditions: the one 304 rule, the one 206/416 rule (the RFC 9110 logic itself is
   server/http/conditional.py).
3. `cache.py`: the per-process state (`Origin`): verified tokens, rendition models, stored
   objects' metadata and rendered playlists, in LRUs; `Origin.target` says what a route answers.
4. `sendfile.py`: a stored file's bytes onto a connection, sendfile(2) with its fallbacks.
5. `progressive.py`: waiting for a segment of a version still being encoded (bump, one shared
   poller per object, a cap on waiting requests, 503 segment_not_ready).
6. `handlers.py`: the aiohttp handlers and `setup(app)`; every request the fast path does not
   answer, errors included (and every wait for a missing segment), ends here.
7. `fastpath.py`: the fast protocol, answering cached requests without aiohttp's request
   machinery and handing everything else to aiohttp on the same connection.
8. `edge.py`: the runner and protocol factory that put the fast protocol in front of aiohttp.
9. `aiohttp_glue.py`: every use of aiohttp's internals (checked by
   tests/server/test_aiohttp_internals.py).

Modules here use only each other's public names. docs/origin.md tells the design and its
measurements.
"""
