"""Service layer: what the CLI and the HTTP API share above core and warehouse (never a second copy)."""
