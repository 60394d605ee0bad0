package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/assistantd/assistantd/agent/sandbox"
)

// addCodeFlags declares the code_interpreter sandbox's settings; the
// returned function validates them after parsing. The sandbox's directory
// is set later, under the data directory.
func addCodeFlags(fs *flag.FlagSet, env func(name, def string) string) func() (sandbox.Config, error) {
	d := sandbox.DefaultLimits
	idle := fs.String("code-idle-timeout", env("ASSISTANTD_CODE_IDLE_TIMEOUT", "10m"),
		"code_interpreter: free a thread's Python kernel after this long without a call; its files are kept (env ASSISTANTD_CODE_IDLE_TIMEOUT)")
	pool := fs.Int("code-pool", envInt(env, "ASSISTANTD_CODE_POOL", 2),
		"code_interpreter: pre-started kernels waiting for threads' first calls; 0 for none (env ASSISTANTD_CODE_POOL)")
	maxKernels := fs.Int("code-max-kernels", envInt(env, "ASSISTANTD_CODE_MAX_KERNELS", sandbox.DefaultMaxKernels),
		"code_interpreter: Python kernels alive at once, pooled ones included; past it the idlest thread's kernel is stopped, and a call finding all busy fails with an error saying so (env ASSISTANTD_CODE_MAX_KERNELS)")
	unsafe := fs.Bool("code-unsafe", env("ASSISTANTD_CODE_UNSAFE", "") == "true",
		"code_interpreter: run code WITHOUT isolation when bubblewrap is missing (only limits apply); off, such calls answer with an error (env ASSISTANTD_CODE_UNSAFE=true)")
	wall := fs.String("code-timeout", env("ASSISTANTD_CODE_TIMEOUT", d.WallTime.String()),
		"code_interpreter: wall-clock time one call may take (env ASSISTANTD_CODE_TIMEOUT)")
	cpu := fs.String("code-cpu", env("ASSISTANTD_CODE_CPU", d.CPUTime.String()),
		"code_interpreter: CPU time one call may use (env ASSISTANTD_CODE_CPU)")
	memory := fs.String("code-memory", env("ASSISTANTD_CODE_MEMORY", "2GiB"),
		"code_interpreter: address space of a kernel, with a KiB/MiB/GiB suffix (env ASSISTANTD_CODE_MEMORY)")
	procs := fs.Int("code-processes", envInt(env, "ASSISTANTD_CODE_PROCESSES", d.Processes),
		"code_interpreter: processes and threads a kernel may run (env ASSISTANTD_CODE_PROCESSES)")
	files := fs.Int("code-open-files", envInt(env, "ASSISTANTD_CODE_OPEN_FILES", d.OpenFiles),
		"code_interpreter: open files a kernel may hold (env ASSISTANTD_CODE_OPEN_FILES)")
	fileSize := fs.String("code-file-size", env("ASSISTANTD_CODE_FILE_SIZE", "256MiB"),
		"code_interpreter: largest file the code may write (env ASSISTANTD_CODE_FILE_SIZE)")
	disk := fs.String("code-disk", env("ASSISTANTD_CODE_DISK", "1GiB"),
		"code_interpreter: most a thread's /mnt/data (with its kernel's /tmp) may hold on disk; a call past it is stopped and what it wrote deleted (env ASSISTANTD_CODE_DISK)")
	diskFiles := fs.Int("code-disk-files", envInt(env, "ASSISTANTD_CODE_DISK_FILES", d.DiskFiles),
		"code_interpreter: most files and directories a thread's /mnt/data (with its kernel's /tmp) may hold (env ASSISTANTD_CODE_DISK_FILES)")
	shared := fs.String("code-shared-dir", env("ASSISTANTD_CODE_SHARED_DIR", sandbox.DefaultSharedDir),
		"code_interpreter: where its files go when the directories above --data do not let the kernels' users pass, as in root's home directory (env ASSISTANTD_CODE_SHARED_DIR)")
	output := fs.String("code-output", env("ASSISTANTD_CODE_OUTPUT", "256KiB"),
		"code_interpreter: output (stdout and stderr) one call may print; the code is stopped past it (env ASSISTANTD_CODE_OUTPUT)")
	return func() (sandbox.Config, error) {
		c := sandbox.Config{PoolSize: *pool, Unsafe: *unsafe, MaxKernels: *maxKernels, SharedDir: *shared}
		if *pool == 0 {
			c.PoolSize = -1
		}
		var err error
		durations := []struct {
			name string
			val  string
			dst  *time.Duration
		}{{"code-idle-timeout", *idle, &c.IdleTimeout}, {"code-timeout", *wall, &c.Limits.WallTime}, {"code-cpu", *cpu, &c.Limits.CPUTime}}
		for _, v := range durations {
			if *v.dst, err = time.ParseDuration(v.val); err != nil || *v.dst < time.Second {
				return c, fmt.Errorf("invalid --%s %q: expected a duration of at least 1s, such as 2m", v.name, v.val)
			}
		}
		sizes := []struct {
			name string
			val  string
			dst  *int64
			min  int64
		}{{"code-memory", *memory, &c.Limits.Memory, 256 << 20}, {"code-file-size", *fileSize, &c.Limits.FileSize, 1 << 10},
			{"code-output", *output, &c.Limits.Output, 1 << 10}, {"code-disk", *disk, &c.Limits.Disk, 1 << 20}}
		for _, v := range sizes {
			if *v.dst, err = parseBytes(v.val); err != nil || *v.dst < v.min {
				return c, fmt.Errorf("invalid --%s %q: expected a size of at least %d bytes, such as 1GiB", v.name, v.val, v.min)
			}
		}
		if *pool < 0 || *procs < 4 || *files < 16 || *diskFiles < 1 || *maxKernels < 1 {
			return c, fmt.Errorf("--code-pool must be at least 0, --code-processes at least 4, --code-open-files at least 16, " +
				"--code-disk-files at least 1 and --code-max-kernels at least 1")
		}
		c.Limits.Processes, c.Limits.OpenFiles, c.Limits.DiskFiles = *procs, *files, *diskFiles
		return c, nil
	}
}
