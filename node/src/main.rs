//! `meridian`: run and inspect Meridian world nodes (the command line is
//! `meridian_node::cli`; this binary knows the stock games).

fn main() -> std::process::ExitCode {
    meridian_node::cli::main(meridian_node::games::Games::stock())
}
