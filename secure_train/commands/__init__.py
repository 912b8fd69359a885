"""Small command-line programs behind ``secure-train <command>``."""
