//! End-to-end and interoperability tests across the whole system. The tests are in `e2e/`;
//! the independent peers they talk to (pyiso8583, jPOS) are in `peers/`.
