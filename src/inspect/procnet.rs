//! `/proc/net/{tcp,tcp6,udp,udp6}` parsing: the fallback and test oracle (filled in by the
//! fixture work).
