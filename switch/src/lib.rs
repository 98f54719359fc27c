//! ssn-switch: see ARCHITECTURE.md. Built in its own issue.
