// The few calls whose spelling differs between Linux and macOS, in one place (Sources/README.md,
// "Platforms"). Linux is what is built and tested; the macOS branches compile by construction
// only (no Mac here to run them).
#ifndef NEKOCHAT_PLATFORM_H
#define NEKOCHAT_PLATFORM_H
#include <stddef.h>
#include <stdint.h>

/// The full path of the running executable into `buf` (NUL-terminated). Returns its length, or
/// -1 when it cannot be found.
long nk_executable_path(char *buf, size_t size);

/// Reserves `size` bytes of disk for the open file `fd` (so a full disk fails now, not on a
/// later write into a mapping). 0 on success, else an errno value.
int nk_preallocate(int fd, int64_t size);

/// The modification time of `path` in seconds and nanoseconds. 0 on success, else -1.
int nk_modification_time(const char *path, int64_t *seconds, int64_t *nanoseconds);

/// Runs `argv` (argv[0] a path or a name looked up in PATH) as the terminal's foreground job:
/// in a process group of its own that owns the terminal while it runs (an editor that reads or
/// configures the terminal is not stopped by SIGTTIN/SIGTTOU), with default signal handling.
/// If the job is suspended (Ctrl-Z in it), this process stops with it and gives it the terminal
/// back when continued. Returns the exit status (0-255), 128 + the signal that ended it, or
/// -errno when it could not be started. Without a terminal on stdin it simply runs and waits.
int nk_run_foreground(char *const argv[]);

/// Stops this process (and its process group) as Ctrl-Z does in a shell job, and returns when
/// it is continued (`fg`).
void nk_suspend_self(void);

#endif
