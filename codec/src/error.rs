//! Why a message could not be decoded or a field value was refused.

/// What is wrong with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The message ends inside this field.
    #[error("truncated")]
    Truncated,
    /// The length prefix is not a decimal number.
    #[error("length prefix is not a number")]
    BadLengthPrefix,
    /// The length prefix announces more than the field's maximum.
    #[error("length {len} above the maximum {max}")]
    LengthAboveMax {
        /// The announced length.
        len: u16,
        /// The field's maximum.
        max: u16,
    },
    /// A fixed-length value of the wrong length (encoding side).
    #[error("length {len}, must be {expected}")]
    WrongLength {
        /// The value's length.
        len: usize,
        /// The field's fixed length.
        expected: u16,
    },
    /// A byte that the field's kind does not allow (a non-digit in a numeric field, a nibble
    /// above 9 in BCD, a non-hex character in an ASCII binary field).
    #[error("character not allowed")]
    BadCharacter,
    /// An amount field whose sign is neither `C` nor `D`.
    #[error("amount sign is not C or D")]
    BadSign,
    /// Not a data element number 2..=128.
    #[error("no such data element")]
    NoSuchField,
}

/// Why a message could not be decoded. Every variant is about the bytes, never about their
/// meaning: whether a field is mandatory is the switch's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than an MTI.
    #[error("message shorter than its MTI")]
    MissingMti,
    /// The MTI is not four decimal digits.
    #[error("MTI is not 4 digits")]
    BadMti,
    /// The message ends inside a bitmap.
    #[error("bitmap truncated")]
    TruncatedBitmap,
    /// An ASCII bitmap with a character that is not hexadecimal.
    #[error("bitmap is not hexadecimal")]
    BadBitmap,
    /// A data element is malformed.
    #[error("DE{field}: {error}")]
    Field {
        /// The data element number.
        field: u8,
        /// What is wrong with it.
        error: FieldError,
    },
    /// Bytes left over after the last field the bitmap announces.
    #[error("{0} bytes after the last field")]
    TrailingBytes(usize),
    /// Longer than any frame either profile can carry.
    #[error("message of {0} bytes is longer than the codec accepts")]
    TooLong(usize),
}
