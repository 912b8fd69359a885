"""The package version (one place; read by the CLI, run records and manifests)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
