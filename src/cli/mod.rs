//! The `radmfa` command line, one file per command group: `args` is what
//! clap parses, `serve` runs the server, the others run admin commands
//! (`call` decides whether on the store or through the running server) and
//! `print`/`input` talk to the person at the terminal.

pub mod accounting;
pub mod admin_token;
pub mod allocator;
pub mod args;
pub mod backup;
pub mod call;
pub mod check_config;
pub mod client;
pub mod cluster;
pub mod config_source;
pub mod import;
pub mod input;
pub mod print;
pub mod report;
pub mod serve;
pub mod status;
pub mod summary;
pub mod sync;
pub mod token;
pub mod user;
