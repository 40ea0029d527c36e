//! Lab client (filled in by its issue).
