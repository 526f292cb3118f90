//! Replication: a sans-io state machine (events in, actions out).
