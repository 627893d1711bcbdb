//! Reading a live process's memory, to prove that secrets never reached it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Every readable private or anonymous mapping of `pid`, concatenated. Needs the same
/// user as the target (or root) and a dumpable target.
pub fn read_process_memory(pid: u32) -> std::io::Result<Vec<u8>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut mem = File::open(format!("/proc/{pid}/mem"))?;
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or("");
        // Skip unreadable regions and the kernel's special ones; file-backed code and
        // read-only data cannot hold anything the process computed.
        if !perms.starts_with('r') || path.starts_with("[vvar") || path.starts_with("[vsyscall") {
            continue;
        }
        if !perms.contains('w') && !path.is_empty() && !path.starts_with('[') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_ok() && mem.read_exact(&mut region).is_ok() {
            out.extend_from_slice(&region);
        }
    }
    Ok(out)
}

/// Where `needle` occurs in `haystack`, if anywhere.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
