#!/usr/bin/env python3
"""Write the seed corpus of tests/fuzz/ (run once; the files are committed).

    python3 tests/fuzz/gen_corpus.py

fuzz_msg inputs are a selector byte (an index into fuzz_types in
fuzz_msg.c) followed by a payload; fuzz_frame inputs are a control byte
(0x80: max_frame 64; low nibble: how many chunk sizes follow), the chunk
sizes, then a stream of frames. fuzz_cbor_text inputs are a mode byte (1:
JSON, 2: bytes as hex) and one CBOR item; fuzz_json inputs a mode byte (1:
an event line) and the text. fuzz_index inputs are a mode byte
(fuzz_index.c) followed by a BASE.idx file.
"""
import os
import struct

from crc32c import crc32c

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- a tiny CBOR encoder with indefinite forms ----


def head(major, v):
    if v < 24:
        return bytes([major << 5 | v])
    if v < 0x100:
        return bytes([major << 5 | 24, v])
    if v < 0x10000:
        return bytes([major << 5 | 25]) + struct.pack(">H", v)
    if v < 0x100000000:
        return bytes([major << 5 | 26]) + struct.pack(">I", v)
    return bytes([major << 5 | 27]) + struct.pack(">Q", v)


class Raw(bytes):
    """Already-encoded CBOR."""


class Indef:
    """An indefinite-length item: Indef(list|dict|[chunks of str|bytes])."""

    def __init__(self, v, kind=None):
        self.v = v
        self.kind = kind


def enc(x):
    if isinstance(x, Raw):
        return bytes(x)
    if x is None:
        return b"\xf6"
    if x is True:
        return b"\xf5"
    if x is False:
        return b"\xf4"
    if isinstance(x, int):
        return head(0, x) if x >= 0 else head(1, -1 - x)
    if isinstance(x, float):
        return b"\xfb" + struct.pack(">d", x)
    if isinstance(x, bytes):
        return head(2, len(x)) + x
    if isinstance(x, str):
        b = x.encode()
        return head(3, len(b)) + b
    if isinstance(x, list):
        return head(4, len(x)) + b"".join(enc(i) for i in x)
    if isinstance(x, dict):
        return head(5, len(x)) + b"".join(enc(k) + enc(v) for k, v in x.items())
    if isinstance(x, Indef):
        v = x.v
        if isinstance(v, list) and x.kind == "bytes":
            return b"\x5f" + b"".join(enc(c) for c in v) + b"\xff"
        if isinstance(v, list) and x.kind == "text":
            return b"\x7f" + b"".join(enc(c) for c in v) + b"\xff"
        if isinstance(v, list):
            return b"\x9f" + b"".join(enc(i) for i in v) + b"\xff"
        if isinstance(v, dict):
            return b"\xbf" + b"".join(enc(k) + enc(val) for k, val in v.items()) + b"\xff"
    raise TypeError(x)


def pairs(*kv):
    """A definite map from (key, value) pairs, duplicates allowed."""
    return Raw(head(5, len(kv)) + b"".join(enc(k) + enc(v) for k, v in kv))


# Selector bytes of fuzz_msg (indexes into fuzz_types).
SEL = {t: t for t in range(14)}
SEL.update({100: 14, 101: 15, 102: 16, 103: 17, 255: 18, 14: 20, 15: 21, 16: 22, 17: 23})

PR, CR, PUB, POLL, ACK, GET, SCAN, FETCH, HELLO, PING, TOPICS, STATS = range(1, 13)
DELETE_TOPIC, GROUP_SEEK, GROUP_DELETE, TOPIC_CONFIG = 14, 15, 16, 17
OK, EVENTS, VALUE, ENTRIES, ERROR = 100, 101, 102, 103, 255


def messages():
    """(name, type, payload bytes) of valid and invalid messages."""
    m = []

    def add(name, t, payload):
        m.append((name, t, payload if isinstance(payload, bytes) else enc(payload)))

    add("pr", PR, {"cid": 1, "topic": "orders", "id": "p-1"})
    add("pr_indef", PR, Indef({"topic": Indef(["ord", "ers"], "text"), "id": "p"}))
    add("pr_dup", PR, pairs(("topic", 1), ("id", "p"), ("topic", "ok")))
    add("pr_badtopic", PR, {"topic": "a/b", "id": "p"})
    add("cr_full", CR, {"cid": 2, "topic": "t", "group": "g", "member": "m",
                         "start": 42, "ack": "auto", "ack_wait_ms": 5000})
    add("cr_latest", CR, {"topic": "t", "group": "g", "start": "latest", "member": None})
    add("pub_batch", PUB, {"cid": 3, "ack": "sync", "events": [
        [b"k1", 1], ["k2", {"a": [1, 2]}, 1234], [None, None],
        [b"k4", 1.5, 9, {"h": b"x"}], ["", 1, None, {"a": b"", "b": b"1"}]]})
    add("pub_single", PUB, {"key": "user-1", "value": {"name": "bob"}, "ts": 77,
                            "headers": {"c": b"\x01"}, "ack": "none"})
    add("pub_tomb", PUB, {"key": b"k", "value": None})
    add("pub_indef", PUB, Indef({"events": Indef([
        Indef([Indef([b"a", b"b"], "bytes"), 1]),
        [Indef(["x", "y"], "text"), Indef({"deep": Indef([1, 2, 3])}), 5]]),
        "ack": Indef(["wr", "ite"], "text")}))
    add("cluster", 13, {"cid": 9})
    add("cluster_add", 13, {"add": {"id": 4, "raft": "krappyd-3.krappyd-headless:7072"}})
    add("cluster_remove", 13, {"remove": 2})
    add("cluster_both", 13, {"add": {"id": 4, "raft": "h:1"}, "remove": 2})
    add("pub_both", PUB, {"events": [[None, 1]], "value": 2})
    add("pub_badev", PUB, {"events": [[None, 1], [1, 2], [None]]})
    add("pub_tags", PUB, {"events": [[None, Raw(b"\xc6\x01")], [None, Raw(b"\xf0")],
                                     [None, Raw(b"\xf8\xff")], [None, Raw(b"\xc1\x1a\x51\x4b\x67\xb0")]]})
    add("pub_bigkey", PUB, {"events": [[b"k" * 16385, 1]]})
    add("poll", POLL, {"cid": 4, "max": 5, "wait_ms": 100, "max_bytes": 0})
    add("poll_empty", POLL, b"")
    add("poll_max0", POLL, {"max": 0})
    add("ack_upto", ACK, {"upto": 99})
    add("ack_offsets", ACK, {"cid": 5, "offsets": [1, 5, 900000000000]})
    add("ack_both", ACK, {"upto": 1, "offsets": [1]})
    add("get", GET, {"topic": "kv", "key": b"\x00\xffkey"})
    add("get_indef", GET, {"topic": "kv", "key": Indef([b"\x00\x01", b"\x02", b""], "bytes")})
    add("scan", SCAN, {"topic": "kv", "prefix": "pre", "after": b"pref", "limit": 10,
                       "cursor": b"\x01\x02"})
    add("fetch", FETCH, {"cid": 6, "topic": "orders", "offset": 1000, "max": 50,
                         "wait_ms": 250, "max_bytes": 4096})
    add("hello", HELLO, {"version": 1, "client": "krappy-cli/0.1", "token": "s3cret"})
    add("hello_v2", HELLO, {"cid": 7, "version": 2})
    add("ping", PING, {"cid": 2**64 - 1})
    add("topics", TOPICS, {})
    add("stats", STATS, {"topic": "orders", "group": "billing"})
    add("delete_topic", DELETE_TOPIC, {"cid": 10, "topic": "orders"})
    add("seek_earliest", GROUP_SEEK, {"topic": "orders", "group": "billing", "to": "earliest"})
    add("seek_offset", GROUP_SEEK, {"topic": "orders", "group": "g", "to": 2**63})
    add("seek_ts", GROUP_SEEK, {"topic": "orders", "group": "g", "to": None, "ts": 1764000000000})
    add("seek_both", GROUP_SEEK, {"topic": "orders", "group": "g", "to": 1, "ts": 2})
    add("group_delete", GROUP_DELETE, {"topic": "orders", "group": Indef(["bill", "ing"], "text")})
    add("unknown13", 13, {"cid": 8})
    add("type0", 0, {})
    # replies
    add("ok_hello", OK, {"cid": 1, "version": 1, "server": "krappyd 0.1.0",
                         "max_frame": 16777216, "max_events": 10000})
    add("events", EVENTS, {"cid": 9, "events": [[10, 1000, "k1", [1, 2]],
                                                 [11, 1001, None, None, {"h": b"x"}],
                                                 [12, 1002, b"k", Indef({})]], "next": 13})
    add("value", VALUE, {"key": b"k", "offset": 5, "ts": 6, "value": 42, "headers": {}})
    add("entries", ENTRIES, {"entries": [[b"k", 1, 2, 42], ["j", 3, 4, None]],
                             "snapshot": 99, "cursor": b"\x00\x01"})
    add("error", ERROR, {"cid": 5, "code": 8, "message": "offset 25 is past next 20",
                         "first": 10, "next": 20, "versions": [1]})
    # malformed
    add("bad_trailing", PING, enc({}) + b"\x00")
    add("bad_notmap", PING, enc([1, 2]))
    add("bad_keytype", PING, Raw(b"\xa1\x01\x02"))
    add("bad_break", PING, b"\xff")
    add("bad_reserved", PING, b"\xa1\x61\x61\x1c")
    add("bad_oddmap", PING, b"\xbf\x61\x61\xff")
    add("bad_hugecount", PUB, b"\xa1\x66events\x9b\x10\x00\x00\x00\x00\x00\x00\x00\x00")
    add("bad_hugemap", PUB, b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00")
    add("bad_hugestr", PR, b"\xa1\x65topic\x7b\x7f\xff\xff\xff\xff\xff\xff\xff\x00")
    add("deep_definite", PUB, enc({"value": Raw(b"\x81" * 5000 + b"\x00")}))
    add("deep_indef", PUB, enc({"value": Raw(b"\x9f" * 70 + b"\xff" * 70)}))
    add("deep_tags", PUB, enc({"value": Raw(b"\xc1" * 3000 + b"\x00")}))
    full = enc({"cid": 3, "ack": "sync", "events": [[b"k1", 1], ["k2", {"a": [1, 2]}, 1234]]})
    add("trunc_half", PUB, full[: len(full) // 2])
    add("trunc_last", PUB, full[:-1])
    # idempotent producers (section 7)
    add("pr_idem", PR, {"cid": 9, "topic": "orders", "id": "p-1", "idempotent": True})
    add("pr_idem_bad", PR, {"topic": "orders", "id": "p-1", "idempotent": 1})
    add("pub_seq", PUB, {"seq": 2**64 - 2, "ack": "sync", "events": [[b"k", 1], [b"k", 2]]})
    add("pub_seq_text", PUB, {"seq": "5", "value": 1})
    add("ok_idem", OK, {"topic": "orders", "next": 7, "epoch": 3, "seq": 250})
    add("ok_dup", OK, {"cid": 9, "first": 100, "count": 5, "duplicate": True})
    add("error_expected", ERROR, {"code": 16, "message": "out of order", "expected": 12})
    # topic settings (section 9)
    add("tc_read", TOPIC_CONFIG, {"cid": 11, "topic": "users"})
    add("tc_set_all", TOPIC_CONFIG, {"topic": "users", "set": {
        "cleanup": "compact,delete", "retention_bytes": 2**40, "retention_ms": 0,
        "delete_retention_ms": 86400000, "segment_bytes": 4096, "segment_ms": 100}})
    add("tc_set_indef", TOPIC_CONFIG, Indef({"topic": "users", "set": Indef({
        Indef(["clean", "up"], "text"): Indef(["delete,", "compact"], "text"),
        "segment_ms": None})}))
    add("tc_set_unknown", TOPIC_CONFIG, {"topic": "users", "set": {"colour": "red"}})
    add("tc_set_badval", TOPIC_CONFIG, {"topic": "users", "set": {"segment_bytes": 10}})
    add("tc_set_text", TOPIC_CONFIG, {"topic": "users", "set": {"segment_ms": "1h"}})
    add("tc_set_notmap", TOPIC_CONFIG, {"topic": "users", "set": ["cleanup", "compact"]})
    add("tc_set_keytype", TOPIC_CONFIG, {"topic": "users", "set": Raw(b"\xa1\x01\x02")})
    add("ok_topic_config", OK, {"topic": "users", "config": {
        "cleanup": "compact", "retention_bytes": 0, "retention_ms": 0,
        "delete_retention_ms": 1, "segment_bytes": 67108864, "segment_ms": 0}})
    return m


def frame(t, payload):
    return struct.pack(">II", 4 + len(payload), t) + payload


# ---- fuzz_index: BASE.idx files (src/store/index.h) ----


def index_file(base, nxt, size, max_ts, entries, count=None, crc=None):
    """A BASE.idx; count and crc are computed unless given (to break them)."""
    n = len(entries) if count is None else count
    body = b"KRAPPYIX" + struct.pack(">QQQQI", base, nxt, size, max_ts, n)
    rest = b"".join(struct.pack(">QQ", o, p) for o, p in entries)
    c = crc32c(body + b"\0\0\0\0" + rest) if crc is None else crc
    return body + struct.pack(">I", c) + rest


def index_seeds():
    """fuzz_index inputs: a mode byte (fuzz_index.c), then the file."""
    mib = 1 << 20
    hints = [(i * 10, 32 + i * 4096) for i in range(4)]
    return {
        "good": (0, index_file(0, 40, mib, 7, hints)),
        "good_empty": (0, index_file(0, 0, mib, 0, [])),
        "good_own_segment": (2, index_file(1000, 2000, 9000, 1, [(1000, 32), (1500, 4200)])),
        "good_many": (0, index_file(0, 100000, mib, 5,
                                    [(i * 40, 32 + i * 4100) for i in range(250)])),
        "bad_crc": (0, index_file(0, 40, mib, 7, hints, crc=1)),
        "short": (0, index_file(0, 40, mib, 7, [])[:47]),
        "count_mismatch": (1, index_file(0, 40, mib, 7, hints, count=5)),
        "count_fixed": (5, index_file(0, 40, mib, 7, hints, count=0)),
        "unordered": (3, index_file(0, 40, mib, 7, [(10, 4128), (0, 32)])),
        "offset_past_next": (3, index_file(0, 40, mib, 7, [(0, 32), (40, 4128)])),
        "pos_past_size": (3, index_file(0, 40, 4096, 7, [(0, 32), (10, 4096)])),
        "pos_in_header": (3, index_file(0, 40, mib, 7, [(0, 31)])),
        "next_below_base": (3, index_file(50, 49, mib, 7, [])),
        "other_base": (1, index_file(7, 40, mib, 7, [])),
        "bad_magic": (3, b"KRAPPYIY" + index_file(0, 40, mib, 7, hints)[8:]),
        "empty": (0, b""),
        "ragged": (7, index_file(0, 40, mib, 7, hints)[:-3]),
    }


def write(dirname, name, data):
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    msgs = messages()
    for name, t, payload in msgs:
        write("fuzz_msg", name, bytes([SEL[t]]) + payload)

    by = {name: (t, p) for name, t, p in msgs}

    def stream(*names):
        return b"".join(frame(*by[n]) for n in names)

    seeds = {
        "one_ping": (0, [], frame(PING, b"")),
        "hello_pub": (0, [], stream("hello", "pr", "pub_batch", "poll")),
        "all_requests": (3, [1, 7, 64], stream("pr", "cr_full", "pub_batch", "pub_single",
                                                "poll", "ack_upto", "ack_offsets", "get",
                                                "scan", "fetch", "hello", "ping", "topics",
                                                "stats")),
        "byte_by_byte": (1, [1], stream("pr", "pub_indef", "get_indef")),
        "chunks_3_5": (2, [3, 5], stream("cr_latest", "pub_tomb", "ack_offsets")),
        "indef": (0, [], stream("pr_indef", "pub_indef", "get_indef")),
        "invalid_mix": (1, [9], stream("pub_both", "poll_max0", "hello_v2", "bad_notmap",
                                       "bad_keytype", "unknown13", "pr_badtopic")),
        "replies": (0, [], stream("ok_hello", "events", "value", "entries", "error")),
        "empty_payloads": (0, [], frame(PING, b"") + frame(TOPICS, b"") + frame(POLL, b"")),
        "size0": (0, [], b"\x00\x00\x00\x00"),
        "size3": (0, [], b"\x00\x00\x00\x03\x00\x00\x00"),
        "size_ffffffff": (0, [], b"\xff\xff\xff\xff"),
        "size_2g": (0, [], b"\x80\x00\x00\x00\x00\x00\x00\x0a"),
        "too_large_small_max": (0x80, [], frame(PUB, by["pub_batch"][1])),
        "fits_small_max": (0x80, [], frame(PING, enc({"cid": 1}))),
        "good_then_bad": (0, [], frame(PING, b"") + b"\x00\x00\x00\x02"),
        "partial_tail": (0, [], frame(PING, b"") + frame(PR, by["pr"][1])[:-3]),
        "truncated_header": (0, [], b"\x00\x00"),
        "deep": (0, [], stream("deep_definite", "deep_indef", "deep_tags")),
        "huge_counts": (0, [], stream("bad_hugecount", "bad_hugemap", "bad_hugestr")),
        "bad_payloads": (4, [2, 1, 255, 0], stream("bad_trailing", "bad_break",
                                                   "bad_reserved", "bad_oddmap")),
        "truncated_msgs": (0, [], stream("trunc_half", "trunc_last")),
        "tags_simple": (0, [], stream("pub_tags")),
        "bigkey": (5, [200, 100, 50, 25, 1], stream("pub_bigkey")),
        "dups": (0, [], stream("pr_dup", "ping")),
        "acks": (0, [], stream("ack_upto", "ack_offsets", "ack_both")),
        "type0_unknown": (0, [], stream("type0", "unknown13")),
        "replies_chunked": (15, list(range(1, 16)), stream("events", "entries")),
        "scan_get": (0, [], stream("scan", "get", "get_indef")),
        "hello_v2_then_more": (0, [], stream("hello_v2", "ping")),
    }
    for name, (ctrl, sizes, data) in seeds.items():
        ctrl = (ctrl & 0x80) | len(sizes)
        write("fuzz_frame", name, bytes([ctrl]) + bytes(sizes) + data)
    for name, (mode, data) in index_seeds().items():
        write("fuzz_index", name, bytes([mode]) + data)
    for name, (mode, data) in segment_seeds().items():
        write("fuzz_segment", name, bytes([mode]) + data)


# ---- fuzz_segment: segment files with both batch header versions ----


def batch(base, events, producer=None):
    """A stored batch (src/store/segment.h): version 2 with (pid, seq, epoch)
    when producer is given, else version 1."""
    payload = b"".join(enc([base + i, 1700000000000 + i, "k%d" % i, v])
                       for i, v in enumerate(events))
    fields = struct.pack(">QIIQ", base, len(events), len(payload), 1700000000000 + len(events))
    if producer is None:
        magic = b"KRB1"
    else:
        pid, seq, epoch = producer
        magic = b"KRB2"
        fields += struct.pack(">QQQII", 0, pid, seq, epoch, 0)
    return magic + struct.pack(">I", crc32c(fields + payload)) + fields + payload


def segment_seeds():
    """fuzz_segment inputs: a mode byte (fuzz_segment.c), then the file
    after its header (mode bit 0 prepends one with base 0)."""
    mixed = (batch(0, [1, 2]) + batch(2, ["a"], (1, 0, 1)) + batch(3, [None, {"x": 1}], (1, 1, 1))
             + batch(5, [3]) + batch(6, [4, 5, 6], (2, 40, 7)))
    reserved = bytearray(batch(0, [1], (1, 0, 1)))
    reserved[63] = 1  # the last byte of version 2's reserved word
    return {
        "v2_mixed": (1, mixed),
        "v2_torn": (1, mixed[:-9]),
        "v2_corrupt_middle": (1, mixed[:70] + b"\xff" + mixed[71:]),
        "v2_reserved_set": (3, bytes(reserved) + batch(1, [2])),
    }


def cbor_items():
    """(name, CBOR bytes) for fuzz_cbor_text: every kind, and the edges."""
    half = lambda bits: Raw(b"\xf9" + struct.pack(">H", bits))
    single = lambda x: Raw(b"\xfa" + struct.pack(">f", x))
    return [
        ("ints", enc([0, 23, 24, 255, 65536, 2**64 - 1, -1, -24, -2**63, -2**64])),
        ("floats", enc([half(0x3c00), half(0x8000), half(0x0001), half(0x7bff), half(0x7e00),
                        half(0x7c00), half(0xfc00), single(1.5), single(1e-40), 0.1, 1e300,
                        -5e-324, 2.0**-24, 100000.0, 1e21, 1e-7, 123456789.125])),
        ("strings", enc(["", "plain", "quote\" back\\ slash/", "\x00\x1f\x7f\u0085\u2028",
                         "\U0001F600 \u00e9", b"", b"\x00\xff\x10", b"abc", b"abcd"])),
        ("bad_utf8", Raw(b"\x84" + b"\x63\xff\xfe\xfd" + b"\x62\xc2\x80" + b"\x63\xed\xa0\x80"
                         + b"\x64\xf4\x90\x80\x80")),
        ("simple", enc([True, False, None, Raw(b"\xf7"), Raw(b"\xf0"), Raw(b"\xf8\xff")])),
        ("map_keys", pairs((1, "int"), ([1, "a"], "array"), ({"k": b"\x01"}, "map"),
                           (b"\x00", "bytes"), ("\"\\", "escapes"), (None, 1),
                           ("dup", 1), ("dup", 2), (Raw(b"\xc1\x01"), "tag"))),
        ("tags", enc([Raw(b"\xc0\x74" + b"2013-03-21T20:04:00Z"), Raw(b"\xc2\x41\x01"),
                      Raw(b"\xd9\xd9\xf7\xa0"), Raw(b"\xc6" * 10 + b"\x00")])),
        ("indefinite", enc(Indef({"a": Indef([1, Indef([b"\x01", b"\x02\x03"], "bytes"),
                                              Indef(["x", "\u00e9"], "text"), Indef([])]),
                                  "e": Indef([], "text")}))),
        ("empty", enc([[], {}, Indef([]), Indef({})])),
        ("deep_64", Raw(b"\x81" * 64 + b"\x00")),
        ("deep_65", Raw(b"\x81" * 65 + b"\x00")),
        # 64 arrays around an empty one: 65 levels, which the JSON reader
        # refuses; the renderer rendered them until it counted as the reader.
        ("deep_65_empty", Raw(b"\x81" * 64 + b"\x80")),
        ("deep_maps", Raw(b"\xa1\x61k" * 64 + b"\xa0")),
        ("deep_tags", Raw(b"\xc1" * 63 + b"\x81\x00")),
        ("deep_key", Raw(b"\xa1" + b"\x81" * 63 + b"\x00" + b"\x01")),
        ("deep_definite", Raw(b"\x81" * 3000 + b"\x00")),
        ("event", enc([7, 1700000000000, "user-1", {"name": "bob", "n": [1, 2.5]}])),
        ("event_headers", enc([8, 9, b"\x00k", None, {"h": b"\x01", "trace": b"abc"}])),
        ("event_null_key", enc([0, 0, None, "v"])),
        # An event whose value nests past the limit: the admin API served
        # "value":] for it.
        ("event_deep_value", enc([1, 2, "k", Raw(b"\x81" * 70 + b"\x00")])),
        ("event_deep_headers", enc([1, 2, "k", 1, Raw(b"\xa1\x61h" + b"\x81" * 70 + b"\x00")])),
        # Found by libFuzzer: a value of 64 levels fits alone but not inside
        # the event object (65 levels, which the JSON reader refuses).
        ("regress_event_value_64_deep", Raw(b"\x84\x01\x02\x61\x81" + b"\x81" * 64 + b"\x00")),
        ("trailing", enc(1) + b"\x00"),
        ("truncated", enc(["abc", 1])[:-1]),
        ("lone_break", b"\xff"),
    ]


def json_texts():
    """(name, mode, text) for fuzz_json: values (mode 0) and event lines (1)."""
    v = [
        ("object", '{"a": 1, "b": [true, false, null], "c": {"d": "e"}, "a": 2}'),
        ("strings", '["", "\\"\\\\\\/\\b\\f\\n\\r\\t", "\\u0000\\u001f\\u00e9\\ud83d\\ude00",'
                    ' "\u00e9\u4e2d\U0001F600"]'),
        ("lone_high", '"\\ud800"'),
        ("lone_low", '"\\udc00x"'),
        ("bad_escape", '"\\x41"'),
        ("ints", "[0, -0, 1, -1, 23, 24, 18446744073709551615, 18446744073709551616,"
                 " -18446744073709551616, -18446744073709551617, 9223372036854775808]"),
        ("floats", "[0.0, -0.0, 1.5, 0.1, 1e2, 1E-2, 65504, 65504.0, 5e-324, 1e308, 1e400,"
                   " -1e400, 1e-400, 2.2250738585072014e-308, 5.960464477539063e-8, 3.4028235e38]"),
        ("long_number", "1" * 801),
        ("long_fraction", "0." + "3" * 790),
        ("whitespace", " \t\r\n[ 1 ,\n2 ]\n"),
        ("deep_64", "[" * 64 + "]" * 64),
        ("deep_65", "[" * 65 + "]" * 65),
        ("deep_objects", '{"a":' * 64 + "1" + "}" * 64),
        ("trailing", "[1] x"),
        ("trailing_comma", "[1,]"),
        ("empty", ""),
        ("control", '"a\x01b"'),
        ("bad_utf8", b'"\xff\xfe"'),
        ("literals", "[true,false,null,tru]"),
        ("number_edges", "[-, 01, 1., .5, 1e, 1e+, -a]"),
    ]
    e = [
        ("event_full", '{"key": "user-1", "value": {"n": 1}, "ts": 1700000000000,'
                       ' "headers": {"trace": "abc", "empty": ""}}'),
        ("event_null", '{"key": null, "value": null, "ts": null, "headers": null}'),
        ("event_value_only", '{"value": [1, "two", 3.5]}'),
        ("event_no_value", '{"key": "k"}'),
        ("event_unknown", '{"value": 1, "extra": 2}'),
        ("event_twice", '{"value": 1, "value": 2}'),
        ("event_bad_key", '{"key": 5, "value": 1}'),
        ("event_long_key", '{"key": "' + "k" * 16385 + '", "value": 1}'),
        ("event_bad_ts", '{"value": 1, "ts": -5}'),
        ("event_float_ts", '{"value": 1, "ts": 1.5}'),
        ("event_bad_header", '{"value": 1, "headers": {"a": 1}}'),
        ("event_headers_array", '{"value": 1, "headers": ["a"]}'),
        ("event_not_object", '[1, 2]'),
        ("event_fetched", '{"offset": 5, "ts": 1700000000000, "key": "00ff10", "key_is_hex": true,'
                          ' "value": "v", "headers": {"t": "abc", "b": {"hex": "00ff"},'
                          ' "u": {"base64url": "AP8"}}}'),
        ("event_bad_hex", '{"key": "0g", "key_is_hex": true, "value": 1,'
                          ' "headers": {"x": {"hex": "abc"}, "y": {"base64url": "A"}}}'),
        ("event_many_headers", '{"value": 0, "headers": {' +
                               ", ".join('"h%d": "%s"' % (i, "v" * i) for i in range(40)) + "}}"),
    ]
    out = [(n, 0, t) for n, t in v] + [(n, 1, t) for n, t in e]
    return [(n, m, t if isinstance(t, bytes) else t.encode()) for n, m, t in out]


def main_text():
    for name, item in cbor_items():
        for mode, suffix in ((0, "diag"), (1, "json"), (3, "json_hex")):
            write("fuzz_cbor_text", name + "_" + suffix, bytes([mode]) + item)
    # Events as the admin API shows them: the mode byte's upper bits are the
    # value limit (here 3 and 63 bytes), headers as text.
    long_text = enc([7, 1, "k", "\u00e9" * 40 + "x" * 100, {"h": b"\xff\xfe", "t": b"text"}])
    write("fuzz_cbor_text", "event_long_text_limit5", bytes([5 << 2 | 1]) + long_text)
    for name, item in cbor_items():
        if name.startswith("event"):
            for limit in (3, 63):
                write("fuzz_cbor_text", "%s_limit%d" % (name, limit), bytes([limit << 2 | 1]) + item)
    for name, mode, text in json_texts():
        write("fuzz_json", name, bytes([mode]) + text)


# ---- fuzz_cmd: the replicated log's commands (src/cluster/cmd.h) ----


def cmd_seeds():
    pub = enc({"events": [["k", "v"], [None, 1, 1700000000000]], "ack": "sync", "seq": 4})
    return {
        "cluster_id": enc([1, "6f1c2a9e0b4d"]),
        "node_info": enc([2, 3, "krappyd-2.krappyd-headless:7070", "krappyd-2:9092"]),
        "node_info_nokafka": enc([2, 1, "127.0.0.1:7070", None]),
        "topic_create": enc([10, "orders"]),
        "publish": enc([11, "orders", 1700000000000, None, pub]),
        "publish_idem": enc([11, "orders", 1700000000000, [b"shop-1", 3], pub]),
        "producer_register": enc([12, "orders", b"shop-1"]),
        "group_create": enc([13, "orders", b"billing", 0]),
        "group_cursors": enc([14, "orders", [[b"billing", 10], [b"audit", 3]]]),
        "topic_delete": enc([15, "orders"]),
        "group_seek": enc([16, "orders", b"billing", 7]),
        "group_delete": enc([17, "orders", b"billing"]),
        "retention": enc([18, "orders", 1000]),
        "unknown_number": enc([99, "orders"]),
        "too_many_items": enc([10, "orders", 1]),
        "bad_topic": enc([10, "a/b"]),
        "bad_cursor_pair": enc([14, "orders", [[b"billing"]]]),
        "not_array": enc({"t": 1}),
        "empty": b"",
        "trailing": enc([10, "orders"]) + b"\x00",
        "indef": enc(Indef([10, "orders"])),
    }


if __name__ == "__main__":
    main()
    main_text()
    for name, data in cmd_seeds().items():
        write("fuzz_cmd", name, data)
