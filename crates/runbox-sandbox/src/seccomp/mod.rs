//! The seccomp filter: compiled once from the reviewed data in [`policy`], applied to the sandbox's PID 1 before it
//! starts the program (the program inherits it).
//!
//! Two filters are stacked: a small hand-written one that refuses the x32 syscall ABI (whose numbers alias the
//! x86-64 ones and would slip past a number-based deny list), and the deny list compiled with `seccompiler`, plus
//! the argument checks (`clone3`, socket families) that answer with another errno than EPERM.

pub mod policy;

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("seccomp: cannot compile the filter: {0}")]
    Compile(String),
    #[error("seccomp: cannot install the filter: {0}")]
    Apply(String),
}

/// The compiled filters, ready to install in a child process.
pub struct CompiledFilter {
    programs: Vec<BpfProgram>,
}

#[cfg(target_arch = "x86_64")]
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

fn masked_eq(arg: u8, mask: u64, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(mask), value)
        .map_err(|e| SeccompError::Compile(e.to_string()))
}

fn eq(arg: u8, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
        .map_err(|e| SeccompError::Compile(e.to_string()))
}

fn ne(arg: u8, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, value)
        .map_err(|e| SeccompError::Compile(e.to_string()))
}

/// One rule that matches when argument `arg` is none of `allowed` (the conditions of a rule must all hold).
fn none_of(arg: u8, allowed: impl Iterator<Item = u64>) -> Result<Vec<SeccompRule>, SeccompError> {
    Ok(vec![rule(allowed.map(|v| ne(arg, v)).collect::<Result<Vec<_>, _>>()?)?])
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conditions).map_err(|e| SeccompError::Compile(e.to_string()))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<BpfProgram, SeccompError> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), ARCH)
        .map_err(|e| SeccompError::Compile(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Compile(e.to_string()))
}

/// Refuses every syscall number with the x32 bit set (EPERM), lets everything else through to the next filter.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> BpfProgram {
    use seccompiler::sock_filter;
    const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let stmt = |code, k| sock_filter { code, jt: 0, jf: 0, k };
    vec![
        stmt(BPF_LD_W_ABS, 0), // seccomp_data.nr
        sock_filter {
            code: BPF_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        stmt(BPF_RET_K, RET_ERRNO | libc::EPERM as u32),
        stmt(BPF_RET_K, RET_ALLOW),
    ]
}

impl CompiledFilter {
    /// Compiles the policy. Done once per jail before any namespace is created, so a policy error is reported
    /// before the program could start.
    pub fn build() -> Result<CompiledFilter, SeccompError> {
        let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
        for family in policy::DENIED {
            for &(_, nr) in family.syscalls {
                deny.insert(nr, vec![]);
            }
        }
        let clone_rules = policy::CLONE_NAMESPACE_FLAGS
            .iter()
            .map(|&(_, flag)| rule(vec![masked_eq(0, flag, flag)?]))
            .collect::<Result<Vec<_>, _>>()?;
        deny.insert(libc::SYS_clone, clone_rules);
        let ioctl_rules = policy::DENIED_IOCTLS
            .iter()
            .map(|&(_, req)| rule(vec![eq(1, req)?]))
            .collect::<Result<Vec<_>, _>>()?;
        deny.insert(libc::SYS_ioctl, ioctl_rules);
        let personalities = policy::ALLOWED_PERSONALITIES.iter().map(|&(_, p)| p);
        deny.insert(libc::SYS_personality, none_of(0, personalities)?);
        // The address family is the first argument of both calls.
        let families = || policy::ALLOWED_SOCKET_FAMILIES.iter().map(|f| f.family as u64);
        let sockets: BTreeMap<i64, Vec<SeccompRule>> = [
            (libc::SYS_socket, none_of(0, families())?),
            (libc::SYS_socketpair, none_of(0, families())?),
        ]
        .into_iter()
        .collect();

        let clone3: BTreeMap<i64, Vec<SeccompRule>> = [(libc::SYS_clone3, vec![])].into_iter().collect();

        let mut programs = vec![
            compile(deny, libc::EPERM)?,
            compile(clone3, policy::CLONE3_ERRNO)?,
            compile(sockets, policy::SOCKET_FAMILY_ERRNO)?,
        ];
        // Order does not matter: the kernel runs every filter and applies the most restrictive verdict.
        #[cfg(target_arch = "x86_64")]
        programs.push(x32_guard());
        Ok(CompiledFilter { programs })
    }

    /// The programs as a zygote reads them (`workers/zygote.py`): for each, its instruction count (u32, native
    /// endian) followed by its instructions as the kernel's 8-byte `sock_filter`s.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for program in &self.programs {
            out.extend_from_slice(&(program.len() as u32).to_ne_bytes());
            for insn in program {
                out.extend_from_slice(&insn.code.to_ne_bytes());
                out.push(insn.jt);
                out.push(insn.jf);
                out.extend_from_slice(&insn.k.to_ne_bytes());
            }
        }
        out
    }

    /// Installs the filters on the calling thread. `no_new_privs` must already be set.
    pub fn apply(&self) -> Result<(), SeccompError> {
        for program in &self.programs {
            seccompiler::apply_filter(program).map_err(|e| SeccompError::Apply(e.to_string()))?;
        }
        Ok(())
    }
}

/// Whether the kernel supports seccomp filters at all.
pub fn available() -> bool {
    // SAFETY: prctl(PR_GET_SECCOMP) reads the calling thread's mode and touches no memory.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    mode >= 0 && std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_compiles() {
        CompiledFilter::build().expect("policy compiles");
    }

    #[test]
    fn no_syscall_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for family in policy::DENIED {
            for &(name, nr) in family.syscalls {
                assert!(seen.insert(nr), "{name} listed twice");
            }
        }
    }
}
