fn main() -> std::process::ExitCode {
    hjepa::cli::main()
}
