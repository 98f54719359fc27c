//! ssn-tests: see ARCHITECTURE.md. Built in its own issue.
