//! Process hardening for the local enclave: what a separate process can do to keep its
//! memory to itself. (On Nitro the hypervisor gives these guarantees.)

use keystead_enclave_proto::Health;

pub struct Hardening {
    pub non_dumpable: bool,
    pub core_dumps_disabled: bool,
    pub memory_locked: bool,
}

/// Makes the process non-dumpable (no ptrace by same-user processes, no core files, and
/// `/proc/PID/mem` closed to them), sets the core-file limit to zero, and locks current
/// and future pages in memory so secrets never reach swap. Each step is best effort:
/// what failed is reported, and the caller decides whether to run anyway.
pub fn harden_process() -> Hardening {
    // SAFETY: prctl(PR_SET_DUMPABLE) and setrlimit take plain integers/structs and touch no
    // memory of ours beyond the rlimit we pass by reference.
    let non_dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == 0;
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: see above.
    let core_dumps_disabled = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) } == 0;
    // SAFETY: mlockall only changes how the kernel pages this process.
    let memory_locked = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0;
    Hardening {
        non_dumpable,
        core_dumps_disabled,
        memory_locked,
    }
}

impl Hardening {
    pub fn health(&self, attestation_format: &str) -> Health {
        Health {
            protocol_version: keystead_enclave_proto::PROTOCOL_VERSION,
            attestation_format: attestation_format.to_string(),
            non_dumpable: self.non_dumpable,
            core_dumps_disabled: self.core_dumps_disabled,
            memory_locked: self.memory_locked,
        }
    }
}
