#define _GNU_SOURCE
#include "CDroverSys.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int drover_open_beneath(int dirfd, const char *path, int flags, unsigned int mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(flags | O_CLOEXEC);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

int drover_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

const int drover_o_path = O_PATH;

const int drover_rlimit_nproc = RLIMIT_NPROC;

int drover_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

/* The child side of drover_spawn. Runs on the parent's stack after vfork: only raw syscalls and
   async-signal-safe calls, never glibc's setuid family (which would signal the parent's threads). */
static void drover_spawn_child(const char *path, char *const argv[], char *const envp[],
                               const struct drover_spawn_options *o, volatile int *error) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(unsigned long));
    if (setpgid(0, 0) != 0) goto fail;
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(o->output_fd, 1) < 0 || dup2(o->output_fd, 2) < 0) goto fail;
    syscall(SYS_close_range, 3U, ~0U, 0U);
    for (int i = 0; i < o->limit_count && i < 8; i++) {
        struct rlimit limit = { (rlim_t)o->limit_values[i], (rlim_t)o->limit_values[i] };
        if (setrlimit(o->limit_resources[i], &limit) != 0) goto fail;
    }
    if (o->set_ids) {
        if (syscall(SYS_setgroups, 0, NULL) != 0) goto fail;
        if (syscall(SYS_setresgid, o->gid, o->gid, o->gid) != 0) goto fail;
        if (syscall(SYS_setresuid, o->uid, o->uid, o->uid) != 0) goto fail;
    }
    execve(path, argv, envp);
fail:
    *error = errno;
    _exit(127);
}

pid_t drover_spawn(const char *path, char *const argv[], char *const envp[],
                   const struct drover_spawn_options *options, int *error) {
    volatile int child_error = 0;
    pid_t pid = vfork();
    if (pid == 0) drover_spawn_child(path, argv, envp, options, &child_error);
    if (pid < 0) {
        *error = errno;
        return -1;
    }
    if (child_error != 0) {
        int status;
        waitpid(pid, &status, 0);
        *error = child_error;
        return -1;
    }
    return pid;
}
