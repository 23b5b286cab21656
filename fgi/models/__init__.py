"""Model definitions: one model per file."""
