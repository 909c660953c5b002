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

/* O_PATH, likewise hidden without _GNU_SOURCE. */
extern const int drover_o_path;

#endif
