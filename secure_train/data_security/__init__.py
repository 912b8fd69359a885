"""Data security: content scanners, the provenance manifest, poisoned-sample detection and the
learned injection detector. Everything here reads records; nothing here trains the model."""
