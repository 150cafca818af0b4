"""Small, self-contained examples built on data bundled with installed packages (no download)."""
