//! The scenarios a bench binary was asked for on its command line.

/// A test of scenario names: every name when the command line names none (flags such as
/// `--bench`, which cargo passes, are not names), else only those it names.
pub fn wanted() -> impl Fn(&str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    move |name| named.is_empty() || named.iter().any(|n| n == name)
}
