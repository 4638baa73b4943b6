"""Users, passwords, access/refresh tokens, sessions, playback tokens, rate limits."""
