//! Lab udp (filled in by its issue).
