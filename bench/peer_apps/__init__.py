"""Programs the peer benchmarks run inside the peers' own virtualenvs (never imported here)."""
