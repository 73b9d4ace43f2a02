//! meridian-node's integration tests: a real node on real sockets.

mod e2e;
