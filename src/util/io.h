/*
 * util/io.h - whole writes to a file descriptor at a position: resumed
 * after short writes and EINTR. Knows nothing of krappy.
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

#endif
