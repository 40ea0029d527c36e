//! Why a port cannot be (re)bound: the diagnosis (the explain issue fills this in).
