"""Response: the security report of a run and incident handling (bundle, rollback)."""
