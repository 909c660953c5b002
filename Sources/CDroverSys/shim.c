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
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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

int drover_gettid(void) { return (int)syscall(SYS_gettid); }

int drover_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

const int drover_o_path = O_PATH;

const int drover_rlimit_nproc = RLIMIT_NPROC;

int drover_accept_cloexec(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC); }

int drover_accept_nonblock(int fd) { return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK); }

/* ---- The event loop ------------------------------------------------------------------------ */

const unsigned int drover_epollin = EPOLLIN, drover_epollout = EPOLLOUT, drover_epollerr = EPOLLERR,
                   drover_epollhup = EPOLLHUP, drover_epollrdhup = EPOLLRDHUP;
const int drover_epoll_ctl_add = EPOLL_CTL_ADD, drover_epoll_ctl_mod = EPOLL_CTL_MOD, drover_epoll_ctl_del = EPOLL_CTL_DEL;

int drover_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int drover_epoll_ctl(int epfd, int op, int fd, unsigned int events) {
    struct epoll_event event = { .events = events, .data = { .fd = fd } };
    return epoll_ctl(epfd, op, fd, &event);
}

int drover_epoll_wait(int epfd, int *fds, unsigned int *events, int max, int timeout_ms) {
    struct epoll_event ready[256];
    if (max > 256) max = 256;
    int count = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < count; i++) {
        fds[i] = ready[i].data.fd;
        events[i] = ready[i].events;
    }
    return count;
}

int drover_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int drover_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* ---- A networked call's namespace ------------------------------------------------------------

   A sandbox with networking sees an HTTP proxy at 127.0.0.1:<port> inside its own, otherwise
   empty network namespace. The spawned child enters a fresh network namespace (before it drops
   to the sandbox's uid), brings loopback up, listens there, and hands the listening socket to the
   pool over a datagram socketpair (SCM_RIGHTS); then bubblewrap keeps that namespace
   (--share-net). A socket belongs to the namespace it was made in, whoever holds it: the pool
   accepts the sandbox's connections on it and proxies them, and no process of ours runs inside
   the sandbox's namespace. Raw syscalls only: this runs after vfork. */

/* One byte of data and room for one descriptor: what passes a socket between the two. */
struct drover_fd_message {
    char byte;
    struct iovec data;
    struct msghdr message;
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
};

static void drover_fd_message_init(struct drover_fd_message *m) {
    memset(m, 0, sizeof *m);
    m->data.iov_base = &m->byte;
    m->data.iov_len = 1;
    m->message.msg_iov = &m->data;
    m->message.msg_iovlen = 1;
    m->message.msg_control = m->control.space;
    m->message.msg_controllen = sizeof m->control.space;
}

static int drover_network_start(const struct drover_spawn_options *o) {
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
    address.sin_port = htons((unsigned short)o->network_port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 64) != 0) return -1;
    struct drover_fd_message m;
    drover_fd_message_init(&m);
    struct cmsghdr *header = CMSG_FIRSTHDR(&m.message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &listener, sizeof(int));
    ssize_t sent = sendmsg(o->network_channel, &m.message, MSG_NOSIGNAL);
    close(listener);
    return sent == 1 ? 0 : -1;
}

int drover_receive_fd(int channel) {
    struct drover_fd_message m;
    drover_fd_message_init(&m);
    if (recvmsg(channel, &m.message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1) return -1;
    struct cmsghdr *header = CMSG_FIRSTHDR(&m.message);
    if (header == NULL || header->cmsg_type != SCM_RIGHTS || header->cmsg_len != CMSG_LEN(sizeof(int))) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof(int));
    return fd;
}

/* Enters the narrowed mount namespace `drover_spawn_options` describes (raw syscalls only: this
   runs after vfork). */
static int drover_narrow_mounts(const struct drover_spawn_options *o) {
    if (unshare(CLONE_NEWNS) != 0) return -1;
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) return -1;
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, o->narrow_home, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) return -1;
    int moved = -1;
    if (umount2(o->narrow_parent, MNT_DETACH) == 0) {
        moved = (int)syscall(SYS_move_mount, tree, "", AT_FDCWD, o->narrow_parent, MOVE_MOUNT_F_EMPTY_PATH);
    }
    int saved = errno;
    close(tree);
    errno = saved;
    return moved;
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
    if (o->narrow_parent != NULL && o->narrow_home != NULL && drover_narrow_mounts(o) != 0) goto fail;
    if (o->network_channel >= 0 && drover_network_start(o) != 0) goto fail;
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
    /* socket: only AF_UNIX, AF_INET and AF_INET6 (never raw: a sandbox's only way out is its proxy,
       and a raw socket could forge what the proxy never sent), and AF_NETLINK, which glibc's
       resolver asks for the host's address families. Every other family (packet, vsock, alg,
       bluetooth, …) is kernel surface no tool needs. */
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 9);
    EMIT(BPF_LD | BPF_W | BPF_ABS, DROVER_ARG0_LOW, 0, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 7, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 2, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0);
    EMIT(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 3);
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
