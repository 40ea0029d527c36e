//! Lab server (filled in by its issue).
