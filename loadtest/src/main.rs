//! `ssn-loadtest`: built in issue 6.
fn main() {}
