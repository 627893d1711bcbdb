//! Reading a live process's memory, to prove that secrets never reached it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

/// Every page of `pid`'s readable private or anonymous mappings that is in memory (or
/// swapped out), concatenated; runs of such pages stay contiguous, so a secret spanning
/// two of them is found. Pages never touched hold nothing and are skipped: allocators
/// reserve large readable regions (mimalloc 1 GiB arenas) that are mostly untouched.
/// Needs the same user as the target (or root) and a dumpable target.
pub fn read_process_memory(pid: u32) -> std::io::Result<Vec<u8>> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let mut mem = File::open(format!("/proc/{pid}/mem"))?;
    let mut pagemap = File::open(format!("/proc/{pid}/pagemap"))?;
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
        for (run_start, run_end) in used_runs(&mut pagemap, start, end)? {
            let mut run = vec![0u8; (run_end - run_start) as usize];
            if mem.seek(SeekFrom::Start(run_start)).is_ok() && mem.read_exact(&mut run).is_ok() {
                out.extend_from_slice(&run);
            }
        }
    }
    Ok(out)
}

const PAGE: u64 = 4096;

/// The address ranges within `[start, end)` whose pages are present or swapped, from
/// `/proc/PID/pagemap` (one 64-bit entry per page: bit 63 present, bit 62 swapped).
fn used_runs(pagemap: &mut File, start: u64, end: u64) -> std::io::Result<Vec<(u64, u64)>> {
    let pages = (end - start) / PAGE;
    let mut entries = vec![0u8; (pages * 8) as usize];
    pagemap.seek(SeekFrom::Start(start / PAGE * 8))?;
    if pagemap.read_exact(&mut entries).is_err() {
        // No page map for this region: read it whole, as before.
        return Ok(vec![(start, end)]);
    }
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, entry) in entries.chunks_exact(8).enumerate() {
        let bits = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
        if bits & (3 << 62) == 0 {
            continue;
        }
        let page = start + i as u64 * PAGE;
        match runs.last_mut() {
            Some((_, run_end)) if *run_end == page => *run_end = page + PAGE,
            _ => runs.push((page, page + PAGE)),
        }
    }
    Ok(runs)
}

/// Where `needle` occurs in `haystack`, if anywhere.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
