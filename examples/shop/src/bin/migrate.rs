//! The shop's migration command line: `cargo run -p shop --bin migrate -- --dir
//! examples/shop/migrations generate|up|down|status|check|docs`. Linking the `shop` library
//! puts its models in the registry the CLI reads.

use shop as _;

fn main() -> std::process::ExitCode {
    polystore::cli::run()
}
