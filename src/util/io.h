/*
 * util/io.h - whole writes to a file descriptor at a position (resumed
 * after short writes and EINTR), and a socket's input dropped. Knows
 * nothing of krappy.
 */
#ifndef KR_UTIL_IO_H
#define KR_UTIL_IO_H

#include <stddef.h>
#include <stdint.h>

/*
 * kr_pwrite_all - write all n bytes of p at file position pos.
 * @return 0, or -1 with errno (ENOSPC when the file takes no more bytes
 *         without saying why); part of the bytes may have been written.
 */
int kr_pwrite_all(int fd, const void *p, size_t n, uint64_t pos);

/*
 * kr_drain_socket - read and drop what socket fd holds now, without
 * waiting (a connection being closed: closing with unread input would
 * answer with a reset, which can destroy replies still in flight).
 * @return 1 when it holds nothing more for now, 0 when the peer has
 *         closed its side, -1 on an error (errno).
 */
int kr_drain_socket(int fd);

#endif
