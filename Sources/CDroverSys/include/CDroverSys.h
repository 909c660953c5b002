#ifndef DROVER_CDROVERSYS_H
#define DROVER_CDROVERSYS_H

/* Opens `path` relative to `dirfd` with the kernel refusing any resolution that leaves `dirfd`'s
   tree: `..` past it, absolute paths and symlinks pointing out all fail with EXDEV. Atomic, so a
   sandbox that swaps a directory for a symlink mid-call cannot win a race. Returns an fd or -1
   with errno set (ENOSYS on kernels before 5.6). */
int drover_open_beneath(int dirfd, const char *path, int flags, unsigned int mode);

/* pipe2(fds, O_CLOEXEC): glibc declares it only under _GNU_SOURCE. */
int drover_pipe_cloexec(int fds[2]);

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC), likewise _GNU_SOURCE only. */
int drover_accept_cloexec(int fd);

/* accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK): for an event loop's listener. */
int drover_accept_nonblock(int fd);

/* The event loop's kernel calls, flattened so that Swift never handles the packed `epoll_event`:
   each registration carries its descriptor as its data. `drover_epoll_wait` fills `fds[i]` and
   `events[i]` for up to `max` ready descriptors and returns how many (or -1 with errno set). */
int drover_epoll_create(void);
int drover_epoll_ctl(int epfd, int op, int fd, unsigned int events);
int drover_epoll_wait(int epfd, int *fds, unsigned int *events, int max, int timeout_ms);
/* A non-blocking, close-on-exec eventfd: how other threads wake the loop. */
int drover_eventfd(void);
/* O_NONBLOCK on a descriptor (0 or -1 with errno set). */
int drover_set_nonblocking(int fd);
extern const unsigned int drover_epollin, drover_epollout, drover_epollerr, drover_epollhup, drover_epollrdhup;
extern const int drover_epoll_ctl_add, drover_epoll_ctl_mod, drover_epoll_ctl_del;

/* The calling thread's id (gettid), for moving one thread into a cgroup v1 `tasks` file. */
int drover_gettid(void);

/* pidfd_open(pid, 0), close-on-exec: a descriptor that turns readable when the process exits,
   while it is still a zombie, so a runner can learn of the exit without reaping (and so freeing)
   the pid. Returns -1 with errno set on failure. */
int drover_pidfd_open(int pid);

/* O_PATH, likewise hidden without _GNU_SOURCE. */
extern const int drover_o_path;

/* RLIMIT_NPROC: a macro over glibc's __RLIMIT_NPROC, which Swift does not import. */
extern const int drover_rlimit_nproc;

#include <sys/types.h>

/* How to start a sandboxed child. */
struct drover_spawn_options {
    /* Where the child's stdout and stderr go (stdin is /dev/null). */
    int output_fd;
    /* When set, the child drops to this uid/gid (and no supplementary groups) before exec. */
    int set_ids;
    unsigned int uid;
    unsigned int gid;
    /* rlimits to set (soft = hard = value): RLIMIT_* numbers and values. */
    int limit_count;
    int limit_resources[8];
    unsigned long long limit_values[8];
    /* When >= 0, handed to the child as descriptor 3 (bubblewrap's `--seccomp 3`). */
    int pass_fd;
    /* Open `cgroup.procs` files (or -1): the child writes "0" to each, joining those control
       groups before exec, so every process of the call is counted against the sandbox's limits. */
    int cgroup_fds[2];
    /* When >= 0 (as root only): the child enters a new network namespace with loopback up,
       listens on 127.0.0.1:network_port there, and sends the listening socket over this datagram
       socket (SCM_RIGHTS) before it drops privileges; bubblewrap then keeps that namespace
       (--share-net). The pool receives it with drover_receive_fd and proxies what arrives. */
    int network_channel;
    int network_port;
    /* When both are set (as root only): the child enters a mount namespace of its own (a slave
       of the pool's, so nothing it does there reaches the host) without the pool's other
       workspaces. `narrow_parent` is the mount every workspace sits under, `narrow_home` this
       sandbox's workspace; the child takes a copy of the workspace's mount, detaches the parent
       with all the workspaces under it, and attaches the copy at `narrow_parent`'s path. So
       bubblewrap, which reads the mount table at each of its mounts, sees the host's few mounts
       and this workspace, not one mount per live sandbox. */
    const char *narrow_parent;
    const char *narrow_home;
};

/* Starts `path` like posix_spawn, doing in the child what posix_spawn cannot: rlimits, a uid/gid
   switch (raw syscalls, safe between vfork and exec), its own process group, an empty signal mask
   with default dispositions, control groups joined, and no inherited descriptors beyond 0, 1, 2
   and the optional descriptor 3 (close_range; its failure fails the spawn).
   Returns the pid, or -1 with *error set to the errno of the failed step. */
pid_t drover_spawn(const char *path, char *const argv[], char *const envp[],
                   const struct drover_spawn_options *options, int *error);

/* Receives a descriptor sent with SCM_RIGHTS (without waiting); -1 when none is there. */
int drover_receive_fd(int channel);

/* The seccomp filter every sandboxed program runs under: a classic-BPF deny list (see shim.c).
   Writes the program (an array of struct sock_filter, as bubblewrap's --seccomp reads it) into
   `buffer` and returns its size in bytes, or -1 when `capacity` is too small or the architecture
   is not one the filter knows (then no filter can be promised). */
int drover_seccomp_program(void *buffer, int capacity);

#endif
