#define _GNU_SOURCE
#include "nk_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#ifdef __APPLE__
#include <mach-o/dyld.h>
#endif

long nk_executable_path(char *buf, size_t size) {
    if (size == 0) return -1;
#ifdef __APPLE__
    uint32_t n = (uint32_t)size;
    if (_NSGetExecutablePath(buf, &n) != 0) return -1;
    return (long)strlen(buf);
#else
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n < 0) return -1;
    buf[n] = 0;
    return (long)n;
#endif
}

int nk_preallocate(int fd, int64_t size) {
#ifdef __APPLE__
    fstore_t store = {F_ALLOCATEALL, F_PEOFPOSMODE, 0, (off_t)size, 0};
    if (fcntl(fd, F_PREALLOCATE, &store) == -1) return errno;
    return ftruncate(fd, (off_t)size) == 0 ? 0 : errno;
#else
    return posix_fallocate(fd, 0, (off_t)size);
#endif
}

int nk_modification_time(const char *path, int64_t *seconds, int64_t *nanoseconds) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
#ifdef __APPLE__
    *seconds = (int64_t)st.st_mtimespec.tv_sec;
    *nanoseconds = (int64_t)st.st_mtimespec.tv_nsec;
#else
    *seconds = (int64_t)st.st_mtim.tv_sec;
    *nanoseconds = (int64_t)st.st_mtim.tv_nsec;
#endif
    return 0;
}

/// Gives the terminal to process group `pgid`. tcsetpgrp from a background group raises SIGTTOU,
/// which is blocked around the call (POSIX: then the call is allowed).
static void give_terminal(int tty, pid_t pgid) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTTOU);
    sigprocmask(SIG_BLOCK, &block, &old);
    tcsetpgrp(tty, pgid);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

int nk_run_foreground(char *const argv[]) {
    const int tty = STDIN_FILENO;
    const int job_control = isatty(tty) && tcgetpgrp(tty) == getpgrp();
    const pid_t ours = getpgrp();
    struct termios saved;
    int have_modes = job_control && tcgetattr(tty, &saved) == 0;
    // Signals the child must get at their defaults (ignored ones would be inherited by exec).
    static const int reset[] = {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGCHLD, SIGPIPE, SIGTERM, SIGHUP, SIGWINCH};
    // SIGCHLD blocked so nothing else reaps the child first; restored below.
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        return -e;
    }
    if (pid == 0) {
        // The child: only async-signal-safe calls from here to exec.
        if (job_control) {
            setpgid(0, 0);
            give_terminal(tty, getpid());
        }
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++) sigaction(reset[i], &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (job_control) {
        setpgid(pid, pid);   // also done by the child: whichever runs first
        give_terminal(tty, pid);
    }
    int status = 0, result = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, job_control ? WUNTRACED : 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            result = -errno;
            break;
        }
        if (WIFSTOPPED(status)) {
            // Ctrl-Z in the job: stop with it, as a shell's job would; when continued, give the
            // terminal back to the job and wake it.
            give_terminal(tty, ours);
            nk_suspend_self();
            give_terminal(tty, pid);
            kill(-pid, SIGCONT);
            continue;
        }
        if (WIFEXITED(status)) { result = WEXITSTATUS(status); break; }
        if (WIFSIGNALED(status)) { result = 128 + WTERMSIG(status); break; }
    }
    if (job_control) {
        give_terminal(tty, ours);
        if (have_modes) tcsetattr(tty, TCSADRAIN, &saved);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return result;
}

void nk_suspend_self(void) {
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTSTP, &dfl, &old);
    // The whole group, as the terminal's Ctrl-Z would: a shell waits for the job's group.
    kill(0, SIGTSTP);
    sigaction(SIGTSTP, &old, NULL);
}
