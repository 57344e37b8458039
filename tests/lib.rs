//! End-to-end tests of baove live in `e2e/`: they start a real nats-server
//! (testkit) and the real service binaries, and talk to them over gRPC as a
//! user's client would. This library is empty on purpose.
