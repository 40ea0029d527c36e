//! Lab proxy (filled in by its issue).
