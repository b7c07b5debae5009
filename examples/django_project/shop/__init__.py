"""A small shop API protected with apikeys (the Django example project)."""
