package sandbox

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp filter bubblewrap installs before it starts Python (its
// --seccomp option): the namespaces, mounts and kernel interfaces a data
// analysis never needs and an escape always does fail with EPERM. Python,
// numpy, pandas, matplotlib, scipy and scikit-learn need none of them;
// fork, threads and subprocesses still work (clone without namespace
// flags). clone3 fails with ENOSYS, which makes glibc fall back to clone,
// whose flags a filter can see (clone3 passes them in memory); fallocate
// fails with EOPNOTSUPP, which makes glibc's posix_fallocate write instead.

// nsFlags are clone's and unshare's namespace flags.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWTIME

// deniedSyscalls fail with EPERM whatever their arguments.
var deniedSyscalls = []string{
	// Namespaces and mounts.
	"unshare", "setns", "mount", "umount2", "pivot_root", "chroot",
	"open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	// Other processes' memory and handles.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	// Kernel keyrings, BPF, perf, userfaultfd, io_uring.
	"keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
	"io_uring_setup", "io_uring_enter", "io_uring_register",
	// The machine itself.
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
	"swapon", "swapoff", "acct", "quotactl", "syslog", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	"iopl", "ioperm", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at", "vhangup", "personality",
}

// seccompPolicy is the filter as a policy of the seccomp library, for
// this machine's architecture (names it lacks, such as x86's iopl on
// arm64, are left out).
func seccompPolicy() (seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, err
	}
	var denied []string
	for _, name := range deniedSyscalls {
		if _, ok := info.SyscallNames[name]; ok {
			denied = append(denied, name)
		}
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionAllow,
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionErrno | seccomp.Action(unix.EPERM), Names: denied},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.EPERM), NamesWithCondtions: []seccomp.NameWithConditions{
				{Name: "clone", Conditions: seccomp.ArgumentConditions{{Argument: 0, Operation: seccomp.BitsSet, Value: nsFlags}}},
			}},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: []string{"clone3"}},
			// fallocate reserves gigabytes in a moment, faster than the
			// disk watcher (disk.go) can look; without it glibc's
			// posix_fallocate writes a byte per block, at the pace of
			// writing, which the watcher keeps up with.
			{Action: seccomp.ActionErrno | seccomp.Action(unix.EOPNOTSUPP), Names: []string{"fallocate"}},
		},
	}, nil
}

// seccompProgram is the filter compiled for this architecture, as the
// array of struct sock_filter bubblewrap reads.
var seccompProgram = sync.OnceValues(func() ([]byte, error) {
	p, err := seccompPolicy()
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	insts, err := p.Assemble()
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	raw, err := bpf.Assemble(insts)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	b := make([]byte, 0, 8*len(raw))
	for _, in := range raw {
		b = binary.NativeEndian.AppendUint16(b, in.Op)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b, nil
})

// seccompFile returns a file to hand bubblewrap as --seccomp's
// descriptor: a pipe holding the compiled filter (far smaller than a
// pipe's buffer), its write end closed.
func seccompFile() (*os.File, error) {
	prog, err := seccompProgram()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, err = w.Write(prog)
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}
