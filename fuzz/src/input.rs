//! Small helpers to read a fuzz input: a byte cursor and a deterministic random schedule.

/// Takes bytes off the front of a fuzz input; an exhausted input reads as zeros, so every
/// input, however short, is a valid case.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&first, rest)) => {
                self.data = rest;
                first
            }
            None => 0,
        }
    }

    /// A number below `bound` (at least 1).
    pub fn below(&mut self, bound: usize) -> usize {
        usize::from(self.byte()) % bound.max(1)
    }

    /// The bytes up to the next `separator` (not included; it is consumed), or the rest.
    pub fn until(&mut self, separator: u8) -> &'a [u8] {
        match self.data.iter().position(|&byte| byte == separator) {
            Some(index) => {
                let (taken, rest) = self.data.split_at(index);
                self.data = &rest[1..];
                taken
            }
            None => self.rest(),
        }
    }

    /// A string up to the next `separator`, invalid UTF-8 replaced.
    pub fn text_until(&mut self, separator: u8) -> String {
        String::from_utf8_lossy(self.until(separator)).into_owned()
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// xorshift64*: a reproducible schedule (chunk sizes, pending reads, cancellations) from one
/// seed byte of the input.
pub struct Schedule(u64);

impl Schedule {
    pub fn new(seed: u8, stream: u64) -> Self {
        Self((u64::from(seed) << 8 | stream) ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}
