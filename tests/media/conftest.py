"""Media tests use the shared `s3_server` fixture of tests/conftest.py."""
