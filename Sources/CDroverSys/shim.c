#define _GNU_SOURCE
#include "CDroverSys.h"
#include <errno.h>
#include <stddef.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <linux/openat2.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
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

int drover_gettid(void) { return (int)syscall(SYS_gettid); }

const int drover_o_path = O_PATH;

const int drover_rlimit_nproc = RLIMIT_NPROC;

int drover_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

/* ---- The egress bridge ------------------------------------------------------------------------

   A sandbox with networking sees an HTTP proxy at 127.0.0.1:<port> inside its own, otherwise
   empty network namespace. The listening socket is made here, in the spawned child, after it has
   entered a fresh network namespace and before it drops to the sandbox's uid; a helper process
   (forked with a raw clone: this runs after vfork) then relays each accepted connection to the
   pool's Unix socket, which lives outside the sandbox's mount namespace, prefixing the
   connection with a preamble that names the sandbox. The helper never parses sandbox bytes; the
   pool's proxy does. It runs as the sandbox's uid, dies with the call (PR_SET_PDEATHSIG, and the
   call's process group), and holds no descriptor of the call's output. Only raw syscalls and
   async-signal-safe calls, no allocation: its memory is a copy of the spawning thread's. */

enum { DROVER_BRIDGE_PAIRS = 64, DROVER_BRIDGE_BUFFER = 16384 };

struct drover_bridge_pair {
    int fd[2];              /* [0]: the sandbox's connection, [1]: the pool's */
    int length[2], offset[2]; /* bytes buffered from fd[i] toward fd[1-i] */
    int eof[2];             /* fd[i] has ended; fd[1-i] was shut for writing once drained */
    char *buffer[2];
};

static void drover_bridge_close(struct drover_bridge_pair *p) {
    close(p->fd[0]);
    close(p->fd[1]);
    p->fd[0] = p->fd[1] = -1;
}

static int drover_bridge_open(const char *socket_path, const char *preamble) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t length = strlen(socket_path);
    if (length >= sizeof address.sun_path) { close(fd); return -1; }
    memcpy(address.sun_path, socket_path, length);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) { close(fd); return -1; }
    size_t sent = 0, total = strlen(preamble);
    while (sent < total) {
        ssize_t n = write(fd, preamble + sent, total - sent);
        if (n <= 0) { if (n < 0 && errno == EINTR) continue; close(fd); return -1; }
        sent += (size_t)n;
    }
    return fd;
}

static void drover_bridge_run(int listener, const char *socket_path, const char *preamble) {
    static struct drover_bridge_pair pairs[DROVER_BRIDGE_PAIRS];
    char *memory = mmap(NULL, (size_t)DROVER_BRIDGE_PAIRS * 2 * DROVER_BRIDGE_BUFFER, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) _exit(1);
    for (int i = 0; i < DROVER_BRIDGE_PAIRS; i++) {
        memset(&pairs[i], 0, sizeof pairs[i]);
        pairs[i].fd[0] = pairs[i].fd[1] = -1;
        pairs[i].buffer[0] = memory + (size_t)(2 * i) * DROVER_BRIDGE_BUFFER;
        pairs[i].buffer[1] = memory + (size_t)(2 * i + 1) * DROVER_BRIDGE_BUFFER;
    }
    struct pollfd polls[1 + 2 * DROVER_BRIDGE_PAIRS];
    for (;;) {
        int n = 0;
        polls[n++] = (struct pollfd){ .fd = listener, .events = POLLIN };
        for (int i = 0; i < DROVER_BRIDGE_PAIRS; i++) {
            struct drover_bridge_pair *p = &pairs[i];
            for (int side = 0; side < 2; side++) {
                short events = 0;
                if (p->fd[0] >= 0) {
                    if (!p->eof[side] && p->length[side] == 0) events |= POLLIN;
                    if (p->length[1 - side] > p->offset[1 - side]) events |= POLLOUT;
                }
                polls[n++] = (struct pollfd){ .fd = p->fd[0] >= 0 ? p->fd[side] : -1, .events = events };
            }
        }
        if (poll(polls, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(1);
        }
        if (polls[0].revents & POLLIN) {
            int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (client >= 0) {
                int slot = -1;
                for (int i = 0; i < DROVER_BRIDGE_PAIRS && slot < 0; i++) if (pairs[i].fd[0] < 0) slot = i;
                int upstream = slot >= 0 ? drover_bridge_open(socket_path, preamble) : -1;
                if (upstream < 0) {
                    close(client);
                } else {
                    struct drover_bridge_pair *p = &pairs[slot];
                    p->fd[0] = client;
                    p->fd[1] = upstream;
                    p->length[0] = p->length[1] = p->offset[0] = p->offset[1] = 0;
                    p->eof[0] = p->eof[1] = 0;
                    continue; /* the poll set changed */
                }
            }
        }
        for (int i = 0; i < DROVER_BRIDGE_PAIRS; i++) {
            struct drover_bridge_pair *p = &pairs[i];
            if (p->fd[0] < 0) continue;
            int broken = 0;
            for (int side = 0; side < 2 && !broken; side++) {
                short revents = polls[1 + 2 * i + side].revents;
                /* write what the other side buffered */
                int from = 1 - side;
                if ((revents & (POLLOUT | POLLERR | POLLHUP)) && p->length[from] > p->offset[from]) {
                    ssize_t w = write(p->fd[side], p->buffer[from] + p->offset[from], (size_t)(p->length[from] - p->offset[from]));
                    if (w < 0 && errno != EINTR && errno != EAGAIN) broken = 1;
                    if (w > 0) p->offset[from] += (int)w;
                    if (p->offset[from] == p->length[from]) {
                        p->offset[from] = p->length[from] = 0;
                        if (p->eof[from]) shutdown(p->fd[side], SHUT_WR);
                    }
                }
                if (!broken && (revents & (POLLIN | POLLHUP | POLLERR)) && !p->eof[side] && p->length[side] == 0) {
                    ssize_t r = read(p->fd[side], p->buffer[side], DROVER_BRIDGE_BUFFER);
                    if (r > 0) {
                        p->length[side] = (int)r;
                    } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                        p->eof[side] = 1;
                        shutdown(p->fd[1 - side], SHUT_WR);
                    }
                }
            }
            if (broken || (p->eof[0] && p->eof[1] && p->length[0] == 0 && p->length[1] == 0)) drover_bridge_close(p);
        }
    }
}

/* In the spawned child: a new network namespace with loopback up, the listener, and the helper. */
static int drover_bridge_start(const struct drover_spawn_options *o) {
    if (unshare(CLONE_NEWNET) != 0) return -1;
    int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    memcpy(request.ifr_name, "lo", 3);
    request.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    int up = ioctl(control, SIOCSIFFLAGS, &request);
    close(control);
    if (up != 0) return -1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0) return -1;
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((unsigned short)o->bridge_port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0) return -1;
    pid_t parent = getpid();
    long helper = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (helper < 0) return -1;
    if (helper == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(0);
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0) _exit(1);
        if (o->set_ids) {
            if (syscall(SYS_setgroups, 0, NULL) != 0 || syscall(SYS_setresgid, o->gid, o->gid, o->gid) != 0
                || syscall(SYS_setresuid, o->uid, o->uid, o->uid) != 0) _exit(1);
        }
        prctl(PR_SET_DUMPABLE, 0);
        drover_bridge_run(listener, o->bridge_socket, o->bridge_preamble);
        _exit(0);
    }
    close(listener);
    return 0;
}

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
    for (int i = 0; i < 2; i++) {
        if (o->cgroup_fds[i] >= 0 && write(o->cgroup_fds[i], "0", 1) != 1) goto fail;
    }
    if (o->bridge_socket != NULL && drover_bridge_start(o) != 0) goto fail;
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(o->output_fd, 1) < 0 || dup2(o->output_fd, 2) < 0) goto fail;
    unsigned int first_closed = 3;
    if (o->pass_fd >= 0) {
        if (o->pass_fd == 3) {
            if (fcntl(3, F_SETFD, 0) != 0) goto fail;
        } else if (dup2(o->pass_fd, 3) < 0) {
            goto fail;
        }
        first_closed = 4;
    }
    if (syscall(SYS_close_range, first_closed, ~0U, 0U) != 0) goto fail;
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

/* ---- The sandbox's seccomp filter ----------------------------------------------------------

   A deny list, not an allow list, so that ordinary programs (git, python, compilers, package
   managers) keep working: what it takes away is the kernel surface a sandbox has no use for and
   that container escapes go through. Denied calls fail with EPERM, which programs handle as "not
   permitted here", except clone3, which fails with ENOSYS so that libc falls back to clone, whose
   flags a classic BPF filter can read (clone3 passes them behind a pointer).

   Order: the architecture first (a program of another ABI would map numbers differently), then
   on x86-64 the x32 ABI's numbers, then the list. */

#if defined(__x86_64__)
#define DROVER_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define DROVER_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define DROVER_ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define DROVER_ARG0_LOW (offsetof(struct seccomp_data, args[0]))
#define DROVER_ARG1_LOW (offsetof(struct seccomp_data, args[1]))

static const long drover_denied[] = {
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_bpf, SYS_perf_event_open,
    SYS_keyctl, SYS_add_key, SYS_request_key, SYS_mount, SYS_umount2, SYS_pivot_root,
    SYS_unshare, SYS_setns, SYS_kexec_load, SYS_kexec_file_load, SYS_init_module,
    SYS_finit_module, SYS_delete_module, SYS_userfaultfd, SYS_io_uring_setup, SYS_io_uring_enter,
    SYS_io_uring_register, SYS_open_by_handle_at, SYS_name_to_handle_at, SYS_fsopen,
    SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_move_mount, SYS_open_tree, SYS_mount_setattr,
    SYS_swapon, SYS_swapoff, SYS_reboot, SYS_syslog, SYS_acct, SYS_quotactl, SYS_lookup_dcookie,
};

int drover_seccomp_program(void *buffer, int capacity) {
#ifndef DROVER_AUDIT_ARCH
    (void)buffer; (void)capacity;
    return -1;
#else
    enum { denied_count = sizeof drover_denied / sizeof drover_denied[0] };
    struct sock_filter program[2 * denied_count + 48];
    int n = 0;
#define EMIT(code, k, jt, jf) (program[n++] = (struct sock_filter)BPF_JUMP((code), (k), (jt), (jf)))
#define RET(value) (program[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (value)))
    EMIT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch), 0, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, DROVER_AUDIT_ARCH, 1, 0);
    RET(SECCOMP_RET_KILL_PROCESS);
    EMIT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
#if defined(__x86_64__)
    EMIT(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* __X32_SYSCALL_BIT */, 0, 1);
    RET(DROVER_ERRNO(EPERM));
#endif
    for (int i = 0; i < denied_count; i++) {
        EMIT(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)drover_denied[i], 0, 1);
        RET(DROVER_ERRNO(EPERM));
    }
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
    RET(DROVER_ERRNO(ENOSYS));
    /* personality: reading it (0xffffffff) and PER_LINUX (0) only; other personalities change how
       the kernel treats the process (address layout, READ_IMPLIES_EXEC). */
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SYS_personality, 0, 4);
    EMIT(BPF_LD | BPF_W | BPF_ABS, DROVER_ARG0_LOW, 0, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffffu, 1, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1);
    RET(SECCOMP_RET_ALLOW);
    /* (the personality branch falls through to here when its argument is another value) */
    EMIT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SYS_personality, 0, 1);
    RET(DROVER_ERRNO(EPERM));
    /* socket: no packet sockets, and no raw or packet-type sockets of any family: a sandbox's
       only way out is its proxy, and a raw socket could forge what the proxy never sent. */
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 6);
    EMIT(BPF_LD | BPF_W | BPF_ABS, DROVER_ARG0_LOW, 0, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, AF_PACKET, 3, 0);
    EMIT(BPF_LD | BPF_W | BPF_ABS, DROVER_ARG1_LOW, 0, 0);
    EMIT(BPF_ALU | BPF_AND | BPF_K, 0xf, 0, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SOCK_RAW, 0, 1);
    RET(DROVER_ERRNO(EPERM));
    EMIT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr), 0, 0);
    /* clone with a namespace flag: a new namespace is what unshare would have given. */
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
    EMIT(BPF_LD | BPF_W | BPF_ABS, DROVER_ARG0_LOW, 0, 0);
    EMIT(BPF_JMP | BPF_JSET | BPF_K,
         CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP, 0, 1);
    RET(DROVER_ERRNO(EPERM));
    RET(SECCOMP_RET_ALLOW);
#undef EMIT
#undef RET
    int size = n * (int)sizeof(struct sock_filter);
    if (size > capacity) return -1;
    memcpy(buffer, program, (size_t)size);
    return size;
#endif
}
