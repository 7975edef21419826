#!/usr/bin/env python3
"""What the disk does under a 3-node C2 run: the page cache's dirty data next
to the Raft log's writes, and two probes of the disk's flush latency.

    e2e/bench/vs/c2_disk.py sample FILE SECS
        /proc/meminfo Dirty and Writeback (kB), /proc/vmstat nr_dirty and
        nr_written (pages) every 10 ms, one "t dirty writeback nr_dirty
        nr_written" line each (t: CLOCK_MONOTONIC seconds, the clock of the
        cluster's and bench_vs's traces). Start it beside bench_vs, then
        give FILE to c2_stages.py --dirty.

    e2e/bench/vs/c2_disk.py others DIR SECS [MIB_PER_S]
        The latency of a 4 KiB write + fdatasync every 2 ms in DIR while a
        second process writes MIB_PER_S (default 16) to another file there,
        in alternating 2 s slices, so that all three see the same moments:
        "none" (it idles), "burst" (page-cache writes, an fdatasync of each
        16 MiB: the store's sync of unsynced segments) and "steady" (the
        same, with sync_file_range(WRITE) of every 256 KiB as written).

    e2e/bench/vs/c2_disk.py prealloc DIR N [ENTRY_BYTES] [BLOCK]
        libraft's way of writing its log (O_DIRECT|O_DSYNC, each write the
        tail block again plus the entries appended since), N writes of
        ENTRY_BYTES (default 120) into a segment that is posix_fallocate'd
        (unwritten extents: how libraft 0.15 prepares one) with 4 KiB blocks,
        the same with BLOCK-byte blocks (default 16384), and one that is
        zero-filled with 4 KiB blocks, write by write in turn. Like libraft,
        each write goes first through kernel AIO with RWF_NOWAIT and, when
        that answers EAGAIN, again without it (counted; x86-64 only).
"""
import ctypes
import errno
import mmap
import os
import struct
import sys
import time

SLICE = 2.0
MIB = 1 << 20


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))]


def summary(name, lat):
    lat = sorted(x * 1e3 for x in lat)
    if not lat:
        return "%-11s no samples" % name
    return "%-11s n=%5d p50 %.2f p90 %.2f p99 %.2f p99.9 %.1f max %.1f ms, >10 ms %d, >30 ms %d" % (
        name, len(lat), pct(lat, .5), pct(lat, .9), pct(lat, .99), pct(lat, .999), lat[-1],
        sum(x > 10 for x in lat), sum(x > 30 for x in lat))


def sample(path, secs):
    end = time.monotonic() + secs
    with open(path, "w") as out:
        while time.monotonic() < end:
            t = time.monotonic()
            mem = {}
            with open("/proc/meminfo") as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k in ("Dirty", "Writeback"):
                        mem[k] = int(v.split()[0])
            vm = {}
            with open("/proc/vmstat") as f:
                for line in f:
                    k, v = line.split()
                    if k in ("nr_dirty", "nr_written"):
                        vm[k] = int(v)
            out.write("%.4f %d %d %d %d\n" % (t, mem["Dirty"], mem["Writeback"], vm["nr_dirty"],
                                              vm["nr_written"]))
            time.sleep(0.01)


def slice_of(base, t):
    return int((t - base) / SLICE) % 3


def writer(path, base, end, mib):
    """The other process: the slice's way of writing mib MiB/s."""
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    buf = b"x" * 65536
    off = synced = ranged = 0
    sent, t0 = 0.0, time.monotonic()
    while time.monotonic() < end:
        mode = slice_of(base, time.monotonic())
        if mode == 0:
            time.sleep(0.001)
            sent, t0 = 0.0, time.monotonic()
            continue
        due = (time.monotonic() - t0) * mib * MIB
        while sent < due:
            os.pwrite(fd, buf, off)
            off += len(buf)
            sent += len(buf)
            if mode == 2 and off - ranged >= 256 * 1024:
                os.sync_file_range(fd, ranged, off - ranged, os.SYNC_FILE_RANGE_WRITE)
                ranged = off
            if off - synced >= 16 * MIB:
                os.fdatasync(fd)
                synced = ranged = off
        if off >= 1 << 30:
            os.ftruncate(fd, 0)
            off = synced = ranged = 0
        time.sleep(0.001)
    os.close(fd)


def others(d, secs, mib):
    base = time.monotonic()
    end = base + secs
    other = os.path.join(d, "c2_disk.other")
    pid = os.fork()
    if pid == 0:
        try:
            writer(other, base, end, mib)
        finally:
            os._exit(0)
    log = os.path.join(d, "c2_disk.log")
    fd = os.open(log, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    block = b"y" * 4096
    lat = ([], [], [])
    off = 0
    while time.monotonic() < end:
        os.pwrite(fd, block, off)
        off = (off + 4096) % (64 * MIB)
        t = time.monotonic()
        os.fdatasync(fd)
        lat[slice_of(base, t)].append(time.monotonic() - t)
        time.sleep(0.002)
    os.waitpid(pid, 0)
    os.close(fd)
    for p in (log, other):
        os.unlink(p)
    print("4 KiB write + fdatasync every 2 ms; another process writing %d MiB/s:" % mib)
    for name, v in zip(("none", "burst", "steady"), lat):
        print("  " + summary(name, v))


class Aio:
    """Kernel AIO through the raw system calls (x86-64 numbers)."""
    SETUP, SUBMIT, GETEVENTS, DESTROY = 206, 209, 208, 207
    PWRITE, RWF_NOWAIT = 1, 0x08

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.ctx = ctypes.c_ulong(0)
        if self.libc.syscall(self.SETUP, 4, ctypes.byref(self.ctx)) != 0:
            raise OSError(ctypes.get_errno(), "io_setup")

    def pwrite(self, fd, addr, length, off, flags):
        """One write; @return its result (bytes, or -errno)."""
        # struct iocb: data, key, rw_flags, opcode, reqprio, fildes, buf,
        # nbytes, offset, reserved2, flags, resfd
        cb = ctypes.create_string_buffer(struct.pack(
            "<QIiHhIQQqQII", 0, 0, flags, self.PWRITE, 0, fd, addr, length, off, 0, 0, 0), 64)
        cbs = (ctypes.c_void_p * 1)(ctypes.addressof(cb))
        if self.libc.syscall(self.SUBMIT, self.ctx, 1, cbs) != 1:
            return -ctypes.get_errno()
        ev = ctypes.create_string_buffer(32)
        if self.libc.syscall(self.GETEVENTS, self.ctx, 1, 1, ev, None) != 1:
            return -ctypes.get_errno()
        return struct.unpack("<QQqq", ev.raw)[2]

    def close(self):
        self.libc.syscall(self.DESTROY, self.ctx)


def segment(path, size, zero):
    if zero:
        with open(path, "wb") as f:
            for _ in range(size // MIB):
                f.write(bytes(MIB))
            f.flush()
            os.fsync(f.fileno())
        return os.open(path, os.O_WRONLY | os.O_DSYNC | os.O_DIRECT)
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY | os.O_DSYNC | os.O_DIRECT, 0o600)
    os.posix_fallocate(fd, 0, size)
    os.fsync(fd)
    return fd


def prealloc(d, n, entry, block):
    size = 8 * MIB
    names = ("fallocated", "fallocated, %d-byte blocks" % block, "zero-filled")
    paths = [os.path.join(d, "c2_disk.%d" % k) for k in range(3)]
    fds = [segment(paths[0], size, False), segment(paths[1], size, False),
           segment(paths[2], size, True)]
    blocks = (4096, block, 4096)
    buf = mmap.mmap(-1, 4 * block)  # page-aligned, as O_DIRECT wants
    buf.write(b"e" * len(buf))
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    aio = Aio()
    lat = ([], [], [])
    again = [0, 0, 0]
    end = [0, 0, 0]
    for _ in range(n):
        for k in (0, 1, 2):
            e = end[k] + entry
            if e > size - len(buf):
                end[k], e = 0, entry
            b = blocks[k]
            off = end[k] - end[k] % b
            length = -(-e // b) * b - off
            t = time.monotonic()
            r = aio.pwrite(fds[k], addr, length, off, Aio.RWF_NOWAIT)
            if r == -errno.EAGAIN:
                again[k] += 1
                r = aio.pwrite(fds[k], addr, length, off, 0)
            if r != length:
                sys.exit("write of %d bytes at %d: %d" % (length, off, r))
            lat[k].append(time.monotonic() - t)
            end[k] = e
        time.sleep(0.001)
    aio.close()
    buf.close()
    for fd, p in zip(fds, paths):
        os.close(fd)
        os.unlink(p)
    print("O_DIRECT|O_DSYNC log writes of %d-byte entries, tail block rewritten:" % entry)
    for name, v, a in zip(names, lat, again):
        print("  %s; RWF_NOWAIT EAGAIN %d" % (summary(name, v), a))


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] == "sample":
        sample(a[1], float(a[2]))
    elif len(a) >= 3 and a[0] == "others":
        others(a[1], float(a[2]), int(a[3]) if len(a) > 3 else 16)
    elif len(a) >= 3 and a[0] == "prealloc":
        prealloc(a[1], int(a[2]), int(a[3]) if len(a) > 3 else 120,
                 int(a[4]) if len(a) > 4 else 16384)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
