//! Drivers: sockets and threads around the core. They move bytes and read the clock,
//! nothing else.
