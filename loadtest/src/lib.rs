//! ssn-loadtest: see ARCHITECTURE.md. Built in its own issue.
