"""Object storage (file, S3), ffprobe, and the storage key layout. I/O, no HTTP server."""
