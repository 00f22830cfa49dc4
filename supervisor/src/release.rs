//! What this build of the supervisor is: its version as clients see it, and the version of the
//! state it hands over on a reload (ARCHITECTURE.md, *Upgrading in place*).
//!
//! Both sit in marked byte arrays that are read at run time, never folded into the code, so a
//! build can be told apart from another of the same source by editing its file: the release
//! process may stamp a label (a commit, a build number) after `BULKHEAD-BUILD-LABEL:`, and the
//! upgrade tests make "a newer binary" and "an incompatible binary" out of a copy of this one.

/// The label a build may carry, after its marker; NUL-padded.
#[used]
static BUILD_LABEL: [u8; 53] =
    *b"BULKHEAD-BUILD-LABEL:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
const LABEL_MARKER: usize = "BULKHEAD-BUILD-LABEL:".len();

/// The version of the reload state this build writes and reads, four ASCII digits after its
/// marker. Raise it whenever the state's meaning changes incompatibly.
#[used]
static STATE_VERSION: [u8; 27] = *b"BULKHEAD-STATE-VERSION:0001";
const STATE_MARKER: usize = "BULKHEAD-STATE-VERSION:".len();

/// Read a marked array as it is in the file, never as the compiler knows it.
fn read<const N: usize>(marked: &'static [u8; N]) -> [u8; N] {
    // SAFETY: `marked` is a valid, aligned reference to a static array; a volatile read only
    // keeps the compiler from assuming its contents.
    unsafe { std::ptr::read_volatile(marked) }
}

/// The version clients see in `serverInfo`: the package version, then `+label` if stamped.
pub fn version() -> String {
    let bytes = read(&BUILD_LABEL);
    let label: String = bytes[LABEL_MARKER..]
        .iter()
        .take_while(|&&byte| byte != 0)
        .map(|&byte| char::from(byte))
        .filter(char::is_ascii_graphic)
        .collect();
    if label.is_empty() {
        env!("CARGO_PKG_VERSION").to_string()
    } else {
        format!("{}+{label}", env!("CARGO_PKG_VERSION"))
    }
}

/// The reload-state version of this build (0 if the digits were damaged).
pub fn state_version() -> u32 {
    let bytes = read(&STATE_VERSION);
    std::str::from_utf8(&bytes[STATE_MARKER..])
        .ok()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unstamped_build_reports_the_package_version_and_state_version_one() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
        assert_eq!(state_version(), 1);
    }
}
