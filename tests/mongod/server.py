#!/usr/bin/python3
"""A wire-level stand-in for mongod, for testing the mongodb adapter.

    /usr/bin/python3 tests/mongod/server.py --dir DIR [--ttl-interval S]
                                             [--idle-timeout S]

Listens on 127.0.0.1 on two free ports: the MongoDB wire protocol (OP_MSG,
and OP_QUERY for the legacy handshake) and a line-based control port for
fault injection.  Writes DIR/port, DIR/control_port and DIR/pid once both
listen; logs to DIR/server.log.  See README.md beside this file.

Built from Debian's python3-mockupdb (socket binding and reading, OP_QUERY
unpacking) and python3-mongomock (query matching, update operators, general
aggregation stages).  Documents are kept as the raw BSON the client sent, so
they come back byte for byte; sorting follows MongoDB's cross-type order
here, because mongomock's does not (see README.md).
"""

import argparse
import datetime
import decimal
import itertools
import json
import logging
import math
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import uuid

import bson
import mockupdb
import mongomock
import mongomock.filtering
from bson import json_util
from bson.binary import Binary, UuidRepresentation
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

VERSION = "5.0.0-persistor-mock"
MAX_WIRE_VERSION = 13
MAX_BSON = 16 * 1024 * 1024
MAX_MESSAGE = 48000000
MAX_BATCH = 100000
BATCH_BYTES = MAX_BSON  # a reply batch stops growing past this many bytes

# Dates decode naive (UTC): mongomock strips time zones, and naive and aware
# datetimes do not compare.  A naive datetime encodes back as UTC.
OPTS = CodecOptions(document_class=dict, tz_aware=False,
                    uuid_representation=UuidRepresentation.STANDARD)
RAW_OPTS = CodecOptions(document_class=RawBSONDocument,
                        uuid_representation=UuidRepresentation.STANDARD)

OP_REPLY, OP_QUERY, OP_MSG, OP_COMPRESSED = 1, 2004, 2013, 2012

CODE_NAMES = {
    1: "InternalError", 2: "BadValue", 6: "HostUnreachable", 7: "HostNotFound",
    9: "FailedToParse", 11: "UserNotFound", 13: "Unauthorized", 18: "AuthenticationFailed",
    26: "NamespaceNotFound", 27: "IndexNotFound", 43: "CursorNotFound", 48: "NamespaceExists",
    50: "MaxTimeMSExpired", 59: "CommandNotFound", 64: "WriteConcernFailed",
    66: "ImmutableField", 67: "CannotCreateIndex", 72: "InvalidOptions",
    85: "IndexOptionsConflict", 86: "IndexKeySpecsConflict", 89: "NetworkTimeout",
    91: "ShutdownInProgress", 100: "UnsatisfiableWriteConcern", 112: "WriteConflict",
    189: "PrimarySteppedDown", 262: "ExceededTimeLimit", 9001: "SocketException",
    10107: "NotWritablePrimary", 10334: "BSONObjectTooLarge", 11000: "DuplicateKey",
    11600: "InterruptedAtShutdown", 11602: "InterruptedDueToReplStateChange",
    13435: "NotPrimaryNoSecondaryOk", 13436: "NotPrimaryOrSecondary",
    15998: "Location15998", 16410: "Location16410",
}

# Never faulted by `errors`: what a driver sends to monitor and tidy up.
UNFAULTED = {"hello", "ismaster", "ping", "endsessions", "buildinfo"}
WRITE_COMMANDS = {"insert", "update", "delete", "findandmodify"}

log = logging.getLogger("mongod-mock")


class CommandError(Exception):
    """`info`: the error's extra fields, as the server adds them to the
    command's error or to the write error (a duplicate key's keyPattern and
    keyValue)."""
    def __init__(self, code, msg, info=None):
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.info = info or {}


def err_doc(code, msg, labels=None, info=None):
    d = {"ok": 0.0, "errmsg": msg, "code": code,
         "codeName": CODE_NAMES.get(code, "Error%d" % code)}
    d.update(info or {})
    if labels:
        d["errorLabels"] = list(labels)
    return d


def write_error(index, ex):
    """One entry of writeErrors, in mongod's field order."""
    d = {"index": index, "code": ex.code}
    d.update(ex.info)
    d["errmsg"] = ex.msg
    return d


# --------------------------------------------------------------------------
# Raw BSON: walk a document's elements without decoding them.

def _cstring_end(b, pos):
    return b.index(b"\x00", pos)


def raw_elements(raw):
    """Yield (name, type, element_start, element_end) for each top-level
    element of the BSON document `raw` (bytes)."""
    end = len(raw) - 1
    pos = 4
    while pos < end:
        start = pos
        t = raw[pos]
        nend = _cstring_end(raw, pos + 1)
        name = raw[pos + 1:nend].decode("utf-8", "surrogateescape")
        p = nend + 1
        if t in (0x01, 0x09, 0x11, 0x12):
            p += 8
        elif t in (0x02, 0x0D, 0x0E):
            p += 4 + struct.unpack_from("<i", raw, p)[0]
        elif t in (0x03, 0x04, 0x0F):
            p += struct.unpack_from("<i", raw, p)[0]
        elif t == 0x05:
            p += 5 + struct.unpack_from("<i", raw, p)[0]
        elif t in (0x06, 0x0A, 0xFF, 0x7F):
            pass
        elif t == 0x07:
            p += 12
        elif t == 0x08:
            p += 1
        elif t == 0x0B:
            p = _cstring_end(raw, _cstring_end(raw, p) + 1) + 1
        elif t == 0x0C:
            p += 4 + struct.unpack_from("<i", raw, p)[0] + 12
        elif t == 0x10:
            p += 4
        elif t == 0x13:
            p += 16
        else:
            raise CommandError(2, "unknown BSON type 0x%02x" % t)
        yield name, t, start, p
        pos = p


def raw_from_elements(parts):
    body = b"".join(parts)
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def raw_with_id_first(raw, id_value):
    """`raw` with an _id element (id_value) in front, unless it has one."""
    for name, _t, _s, _e in raw_elements(raw):
        if name == "_id":
            return raw
    id_elem = bson.encode({"_id": id_value}, codec_options=OPTS)[4:-1]
    return raw_from_elements([id_elem, raw[4:-1]])


# --------------------------------------------------------------------------
# MongoDB's comparison order (mongomock's sort gets arrays and some
# cross-type cases wrong, so sorting is done here).

class _EmptyArray:
    """Sort key of an empty array: below null, as MongoDB sorts it."""


EMPTY = _EmptyArray()


def type_rank(v):
    if isinstance(v, MinKey):
        return 1
    if v is EMPTY:
        return 1.5
    if v is None:
        return 2
    if isinstance(v, bool):
        return 9
    if isinstance(v, (int, float, Decimal128)):
        return 3
    if isinstance(v, str):
        return 4
    if isinstance(v, (dict, RawBSONDocument)):
        return 5
    if isinstance(v, list):
        return 6
    if isinstance(v, (bytes, Binary, uuid.UUID)):
        return 7
    if isinstance(v, ObjectId):
        return 8
    if isinstance(v, datetime.datetime):
        return 10
    if isinstance(v, Timestamp):
        return 11
    if isinstance(v, (Regex, re.Pattern)):
        return 12
    if isinstance(v, Code):
        return 14 if v.scope else 13
    if isinstance(v, MaxKey):
        return 100
    return 50


def _num(v):
    if isinstance(v, Decimal128):
        return v.to_decimal()
    return v


def _isnan(v):
    return (isinstance(v, float) and math.isnan(v)) or (
        isinstance(v, decimal.Decimal) and v.is_nan())


def _binparts(v):
    if isinstance(v, uuid.UUID):
        return 16, 4, v.bytes
    if isinstance(v, Binary):
        return len(v), v.subtype, bytes(v)
    return len(v), 0, bytes(v)


def _cmp(a, b):
    return (a > b) - (a < b)


def compare(a, b):
    ra, rb = type_rank(a), type_rank(b)
    if ra != rb:
        return _cmp(ra, rb)
    if ra == 3:
        a, b = _num(a), _num(b)
        na, nb = _isnan(a), _isnan(b)
        if na or nb:
            return _cmp(not na, not nb)  # NaN below every number
        return _cmp(a, b)
    if ra == 4:
        return _cmp(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))
    if ra == 5:
        ia, ib = list(a.items()), list(b.items())
        for (ka, va), (kb, vb) in zip(ia, ib):
            c = _cmp(type_rank(va), type_rank(vb)) or _cmp(ka, kb) or compare(va, vb)
            if c:
                return c
        return _cmp(len(ia), len(ib))
    if ra == 6:
        for x, y in zip(a, b):
            c = compare(x, y)
            if c:
                return c
        return _cmp(len(a), len(b))
    if ra == 7:
        return _cmp(_binparts(a), _binparts(b))
    if ra == 8:
        return _cmp(a.binary, b.binary)
    if ra == 9:
        return _cmp(a, b)
    if ra == 10:
        return _cmp(_date_ms(a), _date_ms(b))
    if ra == 11:
        return _cmp((a.time, a.inc), (b.time, b.inc))
    if ra == 12:
        return _cmp((a.pattern, a.flags), (b.pattern, b.flags))
    if ra in (13, 14):
        return _cmp(str(a), str(b))
    return 0


def _date_ms(d):
    if d.tzinfo is not None:
        d = d.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return (d - datetime.datetime(1970, 1, 1)) // datetime.timedelta(milliseconds=1)


def path_values(v, parts):
    """Candidate sort keys of the value at dotted path `parts` in `v`, with
    MongoDB's array traversal.  Missing gives null."""
    if not parts:
        if isinstance(v, list):
            return list(v) if v else [EMPTY]
        return [v]
    head, rest = parts[0], parts[1:]
    if isinstance(v, dict):
        if head in v:
            return path_values(v[head], rest)
        return [None]
    if isinstance(v, list):
        out = []
        if head.isdigit() and int(head) < len(v):
            out.extend(path_values(v[int(head)], rest))
        for e in v:
            if isinstance(e, dict):
                out.extend(path_values(e, parts))
        return out or [None]
    return [None]


def sort_key_value(doc, path, direction):
    vals = path_values(doc, path.split("."))
    best = vals[0]
    for x in vals[1:]:
        c = compare(x, best)
        if (direction > 0 and c < 0) or (direction < 0 and c > 0):
            best = x
    return best


def sort_entries(entries, sort):
    """Sort a list of Entry by a sort spec (dict) with MongoDB's order."""
    keys = []
    for path, d in sort.items():
        if isinstance(d, dict):  # {$meta: ...}: no order
            continue
        if path == "$natural":
            if float(d) < 0:
                entries = list(reversed(entries))
            continue
        keys.append((path, -1 if float(d) < 0 else 1))
    if not keys:
        return list(entries)
    import functools
    cache = {id(e): [sort_key_value(e.doc, p, d) for p, d in keys] for e in entries}

    def cmp(x, y):
        kx, ky = cache[id(x)], cache[id(y)]
        for (p, d), a, b in zip(keys, kx, ky):
            c = compare(a, b)
            if c:
                return c * d
        return 0
    return sorted(entries, key=functools.cmp_to_key(cmp))


def norm(v):
    """A hashable key under which MongoDB-equal values coincide."""
    if v is None:
        return ("null",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, (int, float, Decimal128)):
        v = _num(v)
        if _isnan(v):
            return ("num", "nan")
        return ("num", v)  # 1 == 1.0 == Decimal(1), and they hash alike
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, dict):
        return ("doc", tuple((k, norm(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("arr", tuple(norm(x) for x in v))
    if isinstance(v, datetime.datetime):
        return ("date", _date_ms(v))
    if isinstance(v, (bytes, Binary, uuid.UUID)):
        return ("bin",) + _binparts(v)
    if isinstance(v, ObjectId):
        return ("oid", v.binary)
    return ("other", type(v).__name__, repr(v))


def display(v):
    try:
        return json_util.dumps(v)
    except Exception:
        return repr(v)


# --------------------------------------------------------------------------
# The store.

class Entry:
    __slots__ = ("raw", "doc")

    def __init__(self, raw, doc):
        self.raw = raw
        self.doc = doc


class Index:
    def __init__(self, spec):
        self.spec = spec  # as listIndexes shows it
        self.map = {}     # unique indexes: key tuple -> _id key

    @property
    def name(self):
        return self.spec["name"]

    @property
    def unique(self):
        return bool(self.spec.get("unique"))

    def keys_of(self, doc):
        """Index keys of `doc` (one per array element, as multikey)."""
        if self.spec.get("sparse") and not any(
                _has_path(doc, p) for p in self.spec["key"]):
            return []
        pfe = self.spec.get("partialFilterExpression")
        if pfe is not None and not mongomock.filtering.filter_applies(pfe, doc):
            return []
        per_field = []
        for path in self.spec["key"]:
            vals = path_values(doc, path.split("."))
            per_field.append({norm(None if x is EMPTY else x): None for x in vals})
        return list(itertools.product(*[list(p) for p in per_field]))


def _has_path(doc, path):
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return False
    return True


def key_spec_equal(a, b):
    def n(k):
        return [(f, float(v) if isinstance(v, (int, float, Int64)) and not isinstance(v, bool)
                 else v) for f, v in k.items()]
    return n(a) == n(b)


INDEX_OPTIONS = ("unique", "sparse", "expireAfterSeconds", "partialFilterExpression",
                 "collation", "hidden")


class Collection:
    def __init__(self, db, name):
        self.db = db
        self.name = name
        self.docs = {}  # norm(_id) -> Entry, in insertion order
        self.indexes = {"_id_": Index({"v": 2, "key": {"_id": 1}, "name": "_id_"})}
        self.uuid = uuid.uuid4()

    @property
    def ns(self):
        return "%s.%s" % (self.db, self.name)

    def dup_error(self, index, key_doc):
        return CommandError(
            11000, "E11000 duplicate key error collection: %s index: %s dup key: %s"
            % (self.ns, index.name, display(key_doc)),
            {"keyPattern": dict(index.spec["key"]),
             "keyValue": {k: [] if v is EMPTY else v for k, v in key_doc.items()}})

    def _key_doc(self, index, doc):
        return {p: (sort_key_value(doc, p, 1) if _has_path(doc, p) else None)
                for p in index.spec["key"]}

    def check_unique(self, idkey, doc):
        for ix in self.indexes.values():
            if not ix.unique:
                continue
            for k in ix.keys_of(doc):
                owner = ix.map.get(k)
                if owner is not None and owner != idkey:
                    raise self.dup_error(ix, self._key_doc(ix, doc))

    def _index_add(self, idkey, doc):
        for ix in self.indexes.values():
            if ix.unique:
                for k in ix.keys_of(doc):
                    ix.map[k] = idkey

    def _index_remove(self, idkey, doc):
        for ix in self.indexes.values():
            if ix.unique:
                for k in ix.keys_of(doc):
                    if ix.map.get(k) == idkey:
                        del ix.map[k]

    def put(self, raw, doc, replace=False):
        """Insert (or, with replace, overwrite by _id) a document."""
        if len(raw) > MAX_BSON:
            raise CommandError(10334, "object to insert too large. size in bytes: %d, max size: %d"
                               % (len(raw), MAX_BSON))
        if "_id" not in doc:
            raise CommandError(2, "document has no _id")
        if isinstance(doc["_id"], list):
            raise CommandError(2, "can't use an array for _id")
        idkey = norm(doc["_id"])
        old = self.docs.get(idkey)
        if old is not None and not replace:
            raise self.dup_error(self.indexes["_id_"], {"_id": doc["_id"]})
        self.check_unique(idkey, doc)
        if old is not None:
            self._index_remove(idkey, old.doc)
        self._index_add(idkey, doc)
        self.docs[idkey] = Entry(raw, doc)

    def remove(self, idkey):
        e = self.docs.pop(idkey, None)
        if e is not None:
            self._index_remove(idkey, e.doc)

    def match(self, filt):
        """Entries matching a filter, in natural (insertion) order."""
        if not filt:
            return list(self.docs.values())
        if list(filt) == ["_id"]:
            v = filt["_id"]
            if isinstance(v, (str, int, ObjectId, uuid.UUID)) and not isinstance(v, bool):
                e = self.docs.get(norm(v))
                return [e] if e is not None else []
            if (isinstance(v, dict) and list(v) == ["$in"] and isinstance(v["$in"], list)
                    and all(isinstance(x, (str, ObjectId)) for x in v["$in"])):
                want = {norm(x) for x in v["$in"]}
                return [e for k, e in self.docs.items() if k in want]
        try:
            return [e for e in self.docs.values()
                    if mongomock.filtering.filter_applies(filt, e.doc)]
        except NotImplementedError as ex:
            raise CommandError(2, "unsupported query: %s" % ex)
        except mongomock.OperationFailure as ex:
            raise CommandError(getattr(ex, "code", None) or 2, str(ex))

    def size(self):
        return sum(len(e.raw) for e in self.docs.values())


class Store:
    def __init__(self):
        self.dbs = {}  # db name -> {coll name -> Collection}

    def get(self, db, coll, create=False):
        colls = self.dbs.get(db)
        if colls is None:
            if not create:
                return None
            colls = self.dbs[db] = {}
        c = colls.get(coll)
        if c is None and create:
            c = colls[coll] = Collection(db, coll)
        return c


# --------------------------------------------------------------------------
# Commands.

def decode(raw):
    return bson.decode(raw, codec_options=OPTS)


def encode(doc):
    return bson.encode(doc, codec_options=OPTS)


class Cursor:
    def __init__(self, ns, raws):
        self.ns = ns
        self.raws = raws
        self.pos = 0
        self.used = time.monotonic()


def _int64_like(old, new):
    """After a mongomock update: an Int64 that stayed a number stays Int64
    (mongomock's $inc and friends return plain ints)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {k: _int64_like(old.get(k), v) for k, v in new.items()}
    if isinstance(old, list) and isinstance(new, list):
        return [_int64_like(old[i] if i < len(old) else None, v) for i, v in enumerate(new)]
    if isinstance(old, Int64) and isinstance(new, int) and not isinstance(new, (bool, Int64)):
        return Int64(new)
    return new


def apply_operators(doc, update, query=None, upsert=False):
    """Apply an update-operator document with mongomock; returns the new
    document, or None when the update cannot apply."""
    scratch = mongomock.MongoClient().db.scratch
    if doc is not None:
        scratch.insert_one(doc)
        try:
            scratch.update_one({"_id": doc["_id"]}, update)
        except mongomock.WriteError as ex:
            raise CommandError(getattr(ex, "code", None) or 2, str(ex))
        except (mongomock.OperationFailure, ValueError, KeyError, TypeError) as ex:
            raise CommandError(2, str(ex))
        out = scratch.find_one({"_id": doc["_id"]})
        return _int64_like(doc, out)
    try:
        scratch.update_one(query or {}, update, upsert=True)
    except (mongomock.OperationFailure, ValueError, KeyError, TypeError) as ex:
        raise CommandError(2, str(ex))
    return scratch.find_one()


def is_replacement(u):
    return isinstance(u, dict) and not any(k.startswith("$") for k in u)


def projected(entry, projection):
    """The document as the projection shows it, raw elements kept."""
    if not projection:
        return entry.raw
    fields = {k: v for k, v in projection.items()}
    if any("." in k or k.startswith("$") or isinstance(v, dict) for k, v in fields.items()):
        scratch = mongomock.MongoClient().db.p
        scratch.insert_one(entry.doc)
        try:
            return encode(scratch.find_one({}, fields))
        except (mongomock.OperationFailure, ValueError) as ex:
            raise CommandError(2, str(ex))
    include_id = bool(fields.pop("_id", 1))
    inclusion = any(bool(v) for v in fields.values())
    parts = []
    for name, _t, s, e in raw_elements(entry.raw):
        if name == "_id":
            keep = include_id
        elif inclusion:
            keep = bool(fields.get(name, 0))
        else:
            keep = name not in fields
        if keep:
            parts.append(entry.raw[s:e])
    return raw_from_elements(parts)


class Server:
    def __init__(self, ttl_interval):
        self.lock = threading.RLock()
        self.store = Store()
        self.cursors = {}
        self.stats = {}
        self.last = {}
        self.conn_ids = itertools.count(1)
        self.ttl_interval = ttl_interval
        # Faults.
        self.refuse = False
        self.hang = False
        self.errors = None   # (code, n, labels)
        self.wcerror = None  # (code, n)

    # -- faults ------------------------------------------------------------
    def reset_faults(self):
        with self.lock:
            self.refuse = self.hang = False
            self.errors = self.wcerror = None

    def _take_error(self, name):
        if self.errors is None or name.lower() in UNFAULTED:
            return None
        code, n, labels = self.errors
        n -= 1
        self.errors = (code, n, labels) if n > 0 else None
        return err_doc(code, "injected error %d (persistor mock)" % code, labels)

    def _take_wcerror(self, name):
        if self.wcerror is None or name.lower() not in WRITE_COMMANDS:
            return None
        code, n = self.wcerror
        n -= 1
        self.wcerror = (code, n) if n > 0 else None
        wce = {"code": code, "codeName": CODE_NAMES.get(code, "Error%d" % code),
               "errmsg": "waiting for replication timed out" if code == 64
               else "injected write concern error %d" % code}
        if code == 64:
            wce["errInfo"] = {"wtimeout": True}
        return wce

    # -- dispatch ----------------------------------------------------------
    def run_command(self, cmd, rawcmd, db, conn_id):
        """cmd: the decoded command (dict); rawcmd: RawBSONDocument of the
        body with document sequences added as lists of RawBSONDocument."""
        if not cmd:
            return err_doc(59, "no command")
        name = next(iter(cmd))
        with self.lock:
            self.stats[name] = self.stats.get(name, 0) + 1
            self.last[name] = cmd
            injected = self._take_error(name)
            if injected is not None:
                log.info("%s: injected error %s", name, injected["code"])
                return injected
            handler = HANDLERS.get(name.lower())
            if handler is None:
                return err_doc(59, "no such command: '%s'" % name)
            try:
                reply = handler(self, cmd, rawcmd, db, conn_id)
            except CommandError as ex:
                log.info("%s: error %d %s", name, ex.code, ex.msg)
                return err_doc(ex.code, ex.msg, info=ex.info)
            except Exception as ex:  # a bug here must not kill the connection
                log.exception("%s failed", name)
                return err_doc(1, "mock server error in %s: %r" % (name, ex))
            wce = self._take_wcerror(name)
            if wce is not None:
                reply["writeConcernError"] = wce
            reply.setdefault("ok", 1.0)
            return reply

    # -- cursors -----------------------------------------------------------
    def batch(self, cur, batch_size):
        out, size = [], 0
        while cur.pos < len(cur.raws):
            if batch_size and len(out) >= batch_size:
                break
            r = cur.raws[cur.pos]
            if out and size + len(r) > BATCH_BYTES:
                break
            out.append(RawBSONDocument(r, codec_options=RAW_OPTS))
            size += len(r)
            cur.pos += 1
        return out

    def cursor_reply(self, ns, raws, batch_size, single=False):
        cur = Cursor(ns, raws)
        first = self.batch(cur, batch_size)
        cid = 0
        if cur.pos < len(raws) and not single:
            cid = random.randint(1, 2 ** 62)
            self.cursors[cid] = cur
            self._expire_cursors()
        return {"cursor": {"firstBatch": first, "id": Int64(cid), "ns": ns}, "ok": 1.0}

    def _expire_cursors(self):
        now = time.monotonic()
        for cid in [c for c, cur in self.cursors.items() if now - cur.used > 600]:
            del self.cursors[cid]

    # -- TTL ---------------------------------------------------------------
    def ttl_sweep(self):
        now = datetime.datetime.utcnow()
        removed = 0
        with self.lock:
            for colls in self.store.dbs.values():
                for c in colls.values():
                    for ix in list(c.indexes.values()):
                        secs = ix.spec.get("expireAfterSeconds")
                        if secs is None or len(ix.spec["key"]) != 1:
                            continue
                        path = next(iter(ix.spec["key"]))
                        limit = now - datetime.timedelta(seconds=float(secs))
                        for k, e in list(c.docs.items()):
                            dates = [v for v in path_values(e.doc, path.split("."))
                                     if isinstance(v, datetime.datetime)]
                            if dates and min(dates) < limit:
                                c.remove(k)
                                removed += 1
        if removed:
            log.info("ttl monitor removed %d documents", removed)


# Handlers: (server, cmd, rawcmd, db, conn_id) -> reply dict.

def _coll_name(cmd, name):
    v = cmd[name]
    if not isinstance(v, str) or not v:
        raise CommandError(73, "collection name must be a non-empty string")
    return v


def h_hello(s, cmd, rawcmd, db, conn_id):
    return {"helloOk": True, "isWritablePrimary": True, "ismaster": True,
            "maxBsonObjectSize": MAX_BSON,
            "maxMessageSizeBytes": MAX_MESSAGE, "maxWriteBatchSize": MAX_BATCH,
            "localTime": datetime.datetime.utcnow(), "connectionId": conn_id,
            "minWireVersion": 0, "maxWireVersion": MAX_WIRE_VERSION, "readOnly": False,
            "ok": 1.0}


def h_buildinfo(s, cmd, rawcmd, db, conn_id):
    return {"version": VERSION, "gitVersion": "persistor-mock", "versionArray": [5, 0, 0, 0],
            "bits": 64, "maxBsonObjectSize": MAX_BSON, "storageEngines": ["mongomock"],
            "ok": 1.0}


def h_ok(s, cmd, rawcmd, db, conn_id):
    return {"ok": 1.0}


def h_getlasterror(s, cmd, rawcmd, db, conn_id):
    return {"n": 0, "err": None, "connectionId": conn_id, "ok": 1.0}


def h_server_status(s, cmd, rawcmd, db, conn_id):
    return {"host": "127.0.0.1", "version": VERSION, "process": "mongod",
            "pid": Int64(os.getpid()), "uptime": time.monotonic() - STARTED,
            "localTime": datetime.datetime.utcnow(), "ok": 1.0}


def h_insert(s, cmd, rawcmd, db, conn_id):
    c = s.store.get(db, _coll_name(cmd, "insert"), create=True)
    raws = rawcmd.get("documents")
    if raws is None:
        raise CommandError(9, "insert needs documents")
    ordered = cmd.get("ordered", True)
    n, errors = 0, []
    for i, rd in enumerate(raws):
        raw = rd.raw
        try:
            doc = decode(raw)
            if "_id" not in doc:
                oid = ObjectId()
                raw = raw_with_id_first(raw, oid)
                doc = decode(raw)
            c.put(raw, doc)
            n += 1
        except CommandError as ex:
            errors.append(write_error(i, ex))
            if ordered:
                break
        except (bson.errors.BSONError, ValueError, OverflowError) as ex:
            errors.append({"index": i, "code": 2, "errmsg": "cannot decode: %s" % ex})
            if ordered:
                break
    reply = {"n": n, "ok": 1.0}
    if errors:
        reply["writeErrors"] = errors
    return reply


def _update_one_doc(c, entry, u, raw_u):
    """Apply update statement u to entry; returns True if the doc changed."""
    if is_replacement(u):
        if "_id" in u and norm(u["_id"]) != norm(entry.doc["_id"]):
            raise CommandError(66, "After applying the update, the (immutable) field '_id' "
                                   "was found to have been altered to _id: %s" % display(u["_id"]))
        raw = raw_with_id_first(raw_u, entry.doc["_id"])
        doc = decode(raw)
    elif isinstance(u, dict):
        doc = apply_operators(entry.doc, u)
        raw = encode(doc)
    else:
        raise CommandError(2, "pipeline updates are not supported by the mock")
    if raw == entry.raw:
        return False
    c.put(raw, doc, replace=True)
    return True


def _upsert(c, q, u, raw_u):
    if is_replacement(u):
        if "_id" in u:
            raw = raw_u
        else:
            idv = q.get("_id") if isinstance(q, dict) else None
            if idv is None or (isinstance(idv, dict) and any(k.startswith("$") for k in idv)):
                idv = ObjectId()
            raw = raw_with_id_first(raw_u, idv)
        doc = decode(raw)
    elif isinstance(u, dict):
        doc = apply_operators(None, u, query=q, upsert=True)
        if "_id" in doc:
            doc = dict([("_id", doc["_id"])] + [(k, v) for k, v in doc.items() if k != "_id"])
        raw = encode(doc)
    else:
        raise CommandError(2, "pipeline updates are not supported by the mock")
    c.put(raw, doc)
    return doc["_id"]


def h_update(s, cmd, rawcmd, db, conn_id):
    c = s.store.get(db, _coll_name(cmd, "update"), create=True)
    stmts = cmd.get("updates")
    raw_stmts = rawcmd.get("updates")
    if stmts is None:
        raise CommandError(9, "update needs updates")
    ordered = cmd.get("ordered", True)
    n = modified = 0
    upserted, errors = [], []
    for i, st in enumerate(stmts):
        try:
            q, u = st.get("q", {}), st.get("u")
            raw_u = raw_stmts[i]["u"]
            raw_u = raw_u.raw if isinstance(raw_u, RawBSONDocument) else None
            if u is None:
                raise CommandError(9, "update statement needs u")
            matches = c.match(q)
            if not st.get("multi", False):
                matches = matches[:1]
            elif is_replacement(u):
                raise CommandError(9, "multi update is not supported for replacement-style update")
            if matches:
                for e in matches:
                    n += 1
                    if _update_one_doc(c, e, u, raw_u):
                        modified += 1
            elif st.get("upsert", False):
                idv = _upsert(c, q, u, raw_u)
                upserted.append({"index": i, "_id": idv})
                n += 1
        except CommandError as ex:
            errors.append(write_error(i, ex))
            if ordered:
                break
    reply = {"n": n, "nModified": modified, "ok": 1.0}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    return reply


def h_delete(s, cmd, rawcmd, db, conn_id):
    c = s.store.get(db, _coll_name(cmd, "delete"))
    stmts = cmd.get("deletes")
    if stmts is None:
        raise CommandError(9, "delete needs deletes")
    n, errors = 0, []
    for i, st in enumerate(stmts):
        if c is None:
            continue
        try:
            matches = c.match(st.get("q", {}))
            if st.get("limit", 0):
                matches = matches[:1]
            for e in matches:
                c.remove(norm(e.doc["_id"]))
                n += 1
        except CommandError as ex:
            errors.append(write_error(i, ex))
            if cmd.get("ordered", True):
                break
    reply = {"n": n, "ok": 1.0}
    if errors:
        reply["writeErrors"] = errors
    return reply


def _query(c, filt, sort, skip, limit):
    entries = c.match(filt) if c is not None else []
    if sort:
        entries = sort_entries(entries, sort)
    skip = int(skip or 0)
    if skip < 0:
        raise CommandError(2, "skip value must be non-negative")
    entries = entries[skip:]
    if limit:
        entries = entries[:abs(int(limit))]
    return entries


def h_find(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "find")
    c = s.store.get(db, name)
    limit = int(cmd.get("limit", 0) or 0)
    single = bool(cmd.get("singleBatch", False)) or limit < 0
    entries = _query(c, cmd.get("filter") or {}, cmd.get("sort"), cmd.get("skip", 0), limit)
    proj = cmd.get("projection")
    raws = [projected(e, proj) for e in entries]
    bs = cmd.get("batchSize")
    bs = 101 if bs is None else int(bs)
    return s.cursor_reply("%s.%s" % (db, name), raws, bs, single)


def h_getmore(s, cmd, rawcmd, db, conn_id):
    cid = int(cmd["getMore"])
    cur = s.cursors.get(cid)
    if cur is None:
        raise CommandError(43, "cursor id %d not found" % cid)
    cur.used = time.monotonic()
    batch = s.batch(cur, int(cmd.get("batchSize", 0) or 0))
    if cur.pos >= len(cur.raws):
        del s.cursors[cid]
        cid = 0
    return {"cursor": {"nextBatch": batch, "id": Int64(cid), "ns": cur.ns}, "ok": 1.0}


def h_killcursors(s, cmd, rawcmd, db, conn_id):
    killed, missing = [], []
    for cid in cmd.get("cursors", []):
        if s.cursors.pop(int(cid), None) is not None:
            killed.append(Int64(cid))
        else:
            missing.append(Int64(cid))
    return {"cursorsKilled": killed, "cursorsNotFound": missing, "cursorsAlive": [],
            "cursorsUnknown": [], "ok": 1.0}


def h_count(s, cmd, rawcmd, db, conn_id):
    c = s.store.get(db, _coll_name(cmd, "count"))
    entries = _query(c, cmd.get("query") or {}, None, cmd.get("skip", 0), cmd.get("limit", 0))
    return {"n": len(entries), "ok": 1.0}


def h_distinct(s, cmd, rawcmd, db, conn_id):
    c = s.store.get(db, _coll_name(cmd, "distinct"))
    entries = _query(c, cmd.get("query") or {}, None, 0, 0)
    seen, values = set(), []
    for e in entries:
        for v in path_values(e.doc, cmd["key"].split(".")):
            if v is None and not _has_path(e.doc, cmd["key"]):
                continue
            v = [] if v is EMPTY else v
            k = norm(v)
            if k not in seen:
                seen.add(k)
                values.append(v)
    return {"values": values, "ok": 1.0}


def _coll_stats(c, ns):
    n = len(c.docs) if c else 0
    size = c.size() if c else 0
    nidx = len(c.indexes) if c else 0
    return {"ns": ns, "count": n, "size": size, "avgObjSize": size // n if n else 0,
            "storageSize": size, "totalSize": size, "nindexes": nidx,
            "totalIndexSize": 0, "indexSizes": {k: 0 for k in (c.indexes if c else {})},
            "capped": False}


# Aggregation stages written here, because mongomock's differ from MongoDB:
# its "$a.b" over an array of documents is null where MongoDB gives the
# array of each element's b, and its $sort is not MongoDB's order (see
# README.md).  Only what the adapter sends: $group with a field path or a
# constant _id and {$sum: <number>} accumulators, $addFields of field
# paths and documents of them, $sort.  Anything else: NotNative, and the
# whole rest of the pipeline goes to mongomock as before.

class NotNative(Exception):
    pass


MISSING = object()


def field_parts(path):
    """The components of a field path ("a.b" of "$a.b"), refused as mongod
    refuses them."""
    parts = path.split(".")
    for p in parts:
        if not p:
            raise CommandError(15998, "FieldPath field names may not be empty strings.")
        if p.startswith("$"):
            raise CommandError(16410, "FieldPath field names may not start with '$'. "
                                      "Consider using $getField or $setField.")
    return parts


def agg_path(doc, parts):
    """MongoDB's ExpressionFieldPath: documents by field name (a number is
    a name, never an array index); an array before the last component maps
    over its document elements, leaving out the others and the misses."""
    if not isinstance(doc, dict) or parts[0] not in doc:
        return MISSING
    v = doc[parts[0]]
    if len(parts) == 1:
        return v
    if isinstance(v, dict):
        return agg_path(v, parts[1:])
    if isinstance(v, list):
        out = []
        for e in v:
            x = agg_path(e, parts[1:]) if isinstance(e, dict) else MISSING
            if x is not MISSING:
                out.append(x)
        return out
    return MISSING


def agg_expr(doc, e):
    if isinstance(e, str) and e.startswith("$"):
        if e.startswith("$$"):
            raise NotNative()
        return agg_path(doc, field_parts(e[1:]))
    if isinstance(e, dict):
        if any(k.startswith("$") for k in e):
            raise NotNative()
        out = {}
        for k, x in e.items():
            v = agg_expr(doc, x)
            if v is not MISSING:
                out[k] = v
        return out
    if isinstance(e, list):
        return [None if v is MISSING else v for v in (agg_expr(doc, x) for x in e)]
    return e


def agg_group(docs, spec):
    """$group: values MongoDB holds equal (norm) are one group, whose _id
    is the first value met; a missing _id groups as null."""
    accs = {k: v for k, v in spec.items() if k != "_id"}
    for a in accs.values():
        if (not isinstance(a, dict) or list(a) != ["$sum"] or isinstance(a["$sum"], bool) or
                not isinstance(a["$sum"], (int, float))):
            raise NotNative()
    groups = {}
    for d in docs:
        k = agg_expr(d, spec.get("_id"))
        k = None if k is MISSING else k
        g = groups.setdefault(norm(k), dict([("_id", k)] + [(a, 0) for a in accs]))
        for a, acc in accs.items():
            g[a] += acc["$sum"]
    return list(groups.values())


def agg_add_fields(docs, spec):
    out = []
    for d in docs:
        d = dict(d)
        for k, e in spec.items():
            if "." in k or k.startswith("$"):
                raise NotNative()
            v = agg_expr(d, e)
            if v is MISSING:
                d.pop(k, None)
            else:
                d[k] = v
        out.append(d)
    return out


def agg_native(stages, docs):
    for st in stages:
        if len(st) != 1:
            raise NotNative()
        op, arg = next(iter(st.items()))
        if op == "$group" and isinstance(arg, dict):
            docs = agg_group(docs, arg)
        elif op == "$addFields" and isinstance(arg, dict):
            docs = agg_add_fields(docs, arg)
        elif op == "$sort" and isinstance(arg, dict):
            docs = [e.doc for e in sort_entries([Entry(None, d) for d in docs], arg)]
        else:
            raise NotNative()
    return docs


def h_aggregate(s, cmd, rawcmd, db, conn_id):
    target = cmd["aggregate"]
    pipeline = cmd.get("pipeline")
    if not isinstance(pipeline, list):
        raise CommandError(9, "aggregate needs a pipeline array")
    bs = (cmd.get("cursor") or {}).get("batchSize")
    bs = 101 if bs is None else int(bs)
    if not isinstance(target, str):
        raise CommandError(2, "collectionless aggregate is not supported by the mock")
    ns = "%s.%s" % (db, target)
    c = s.store.get(db, target)
    stages = list(pipeline)
    if stages and "$collStats" in stages[0]:
        opts = stages[0]["$collStats"] or {}
        st = _coll_stats(c, ns)
        out = {"ns": ns, "host": "127.0.0.1", "localTime": datetime.datetime.utcnow()}
        if "storageStats" in opts:
            out["storageStats"] = st
        if "count" in opts:
            out["count"] = st["count"]
        return s.cursor_reply(ns, [encode(out)], bs)
    # Leading $match/$sort/$skip/$limit run here (MongoDB sort order, raw
    # documents kept); whatever follows runs in mongomock.
    filt, sort, entries = {}, None, None
    while stages:
        st = stages[0]
        if len(st) != 1:
            raise CommandError(40323, "A pipeline stage specification object must contain "
                                      "exactly one field.")
        op, arg = next(iter(st.items()))
        if op == "$match" and entries is None and sort is None:
            filt = {"$and": [filt, arg]} if filt else arg
        elif op == "$sort" and entries is None:
            entries = _query(c, filt, arg, 0, 0)
        elif op in ("$skip", "$limit"):
            if entries is None:
                entries = _query(c, filt, None, 0, 0)
            entries = entries[int(arg):] if op == "$skip" else entries[:int(arg)]
        else:
            break
        stages.pop(0)
    if entries is None:
        entries = _query(c, filt, None, 0, 0)
    if not stages:
        return s.cursor_reply(ns, [e.raw for e in entries], bs)
    # mongoc_collection_count_documents: {$group: {_id: 1, n: {$sum: 1}}}
    if len(stages) == 1 and "$group" in stages[0]:
        g = stages[0]["$group"]
        acc = {k: v for k, v in g.items() if k != "_id"}
        if (not isinstance(g.get("_id"), (dict, list, str)) and
                all(v == {"$sum": 1} for v in acc.values())):
            out = [encode(dict([("_id", g.get("_id"))] + [(k, len(entries)) for k in acc]))]
            return s.cursor_reply(ns, out if entries else [], bs)
    if len(stages) == 1 and "$count" in stages[0]:
        out = [encode({stages[0]["$count"]: len(entries)})] if entries else []
        return s.cursor_reply(ns, out, bs)
    try:
        out = agg_native(stages, [e.doc for e in entries])
        return s.cursor_reply(ns, [encode(d) for d in out], bs)
    except NotNative:
        pass
    scratch = mongomock.MongoClient().db.agg
    if entries:
        scratch.insert_many([dict(e.doc) for e in entries])
    try:
        result = list(scratch.aggregate(stages))
    except (NotImplementedError, mongomock.OperationFailure, ValueError, KeyError,
            TypeError) as ex:
        raise CommandError(2, "aggregate: %s" % ex)
    return s.cursor_reply(ns, [encode(d) for d in result], bs)


def h_create(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "create")
    if s.store.get(db, name) is not None:
        raise CommandError(48, "Collection %s.%s already exists." % (db, name))
    s.store.get(db, name, create=True)
    return {"ok": 1.0}


def _index_name(key):
    return "_".join("%s_%s" % (k, v if not isinstance(v, float) or v != int(v) else int(v))
                    for k, v in key.items())


def h_create_indexes(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "createIndexes")
    created = s.store.get(db, name) is None
    c = s.store.get(db, name, create=True)
    before = len(c.indexes)
    specs = cmd.get("indexes")
    if not isinstance(specs, list) or not specs:
        raise CommandError(2, "Must specify at least one index to create")
    new = []
    for spec in specs:
        key = spec.get("key")
        if not isinstance(key, dict) or not key:
            raise CommandError(67, "index key pattern must be a non-empty object")
        spec = dict(spec)
        spec.setdefault("name", _index_name(key))
        iname = spec["name"]
        want = {"v": 2, "key": key, "name": iname}
        for opt in INDEX_OPTIONS:
            if opt in spec and not (opt in ("unique", "sparse", "hidden") and not spec[opt]):
                want[opt] = spec[opt]
        if "expireAfterSeconds" in want and len(key) != 1:
            raise CommandError(67, "TTL indexes are single-field indexes, compound indexes "
                                   "do not support TTL")
        if iname == "_id_" or key_spec_equal(key, {"_id": 1}):
            if key_spec_equal(key, {"_id": 1}) and iname == "_id_":
                continue
            if iname == "_id_":
                raise CommandError(86, "An existing index has the same name as the requested "
                                       "index but a different key pattern")
        same_name = c.indexes.get(iname)
        same_key = [ix for ix in c.indexes.values() if key_spec_equal(ix.spec["key"], key)]
        opts_of = (lambda sp: {o: sp[o] for o in INDEX_OPTIONS if o in sp})
        if same_name is not None:
            if not key_spec_equal(same_name.spec["key"], key):
                raise CommandError(86, "An existing index has the same name as the requested "
                                       "index. When index names are not specified, they are "
                                       "auto generated and can cause conflicts. Please refer "
                                       "to our documentation. Requested index: %s, existing "
                                       "index: %s" % (display(want), display(same_name.spec)))
            if norm(opts_of(same_name.spec)) != norm(opts_of(want)):
                raise CommandError(85, "An equivalent index already exists with the same name "
                                       "but different options. Requested index: %s, existing "
                                       "index: %s" % (display(want), display(same_name.spec)))
            continue
        if same_key:
            ex = same_key[0]
            if norm(opts_of(ex.spec)) == norm(opts_of(want)):
                raise CommandError(85, "Index already exists with a different name: %s" % ex.name)
            raise CommandError(85, "An equivalent index already exists with a different name "
                                   "and options. Requested index: %s, existing index: %s"
                                   % (display(want), display(ex.spec)))
        ix = Index(want)
        if ix.unique:
            for idkey, e in c.docs.items():
                for k in ix.keys_of(e.doc):
                    if k in ix.map and ix.map[k] != idkey:
                        raise c.dup_error(ix, c._key_doc(ix, e.doc))
                    ix.map[k] = idkey
        new.append(ix)
    for ix in new:
        c.indexes[ix.name] = ix
    reply = {"createdCollectionAutomatically": created, "numIndexesBefore": before,
             "numIndexesAfter": len(c.indexes), "ok": 1.0}
    if not new:
        reply["note"] = "all indexes already exist"
    return reply


def h_list_indexes(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "listIndexes")
    c = s.store.get(db, name)
    if c is None:
        raise CommandError(26, "ns does not exist: %s.%s" % (db, name))
    bs = (cmd.get("cursor") or {}).get("batchSize")
    return s.cursor_reply(c.ns, [encode(ix.spec) for ix in c.indexes.values()],
                          101 if bs is None else int(bs))


def _find_index(c, spec):
    if isinstance(spec, str):
        ix = c.indexes.get(spec)
        if ix is None:
            raise CommandError(27, "index not found with name [%s]" % spec)
        return ix
    for ix in c.indexes.values():
        if key_spec_equal(ix.spec["key"], spec):
            return ix
    raise CommandError(27, "can't find index with key: %s" % display(spec))


def h_drop_indexes(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, next(iter(cmd)))
    c = s.store.get(db, name)
    if c is None:
        raise CommandError(26, "ns not found %s.%s" % (db, name))
    was = len(c.indexes)
    which = cmd.get("index")
    if which == "*":
        targets = [ix for ix in c.indexes.values() if ix.name != "_id_"]
    elif isinstance(which, list):
        targets = [_find_index(c, w) for w in which]
    else:
        targets = [_find_index(c, which)]
    for ix in targets:
        if ix.name == "_id_":
            raise CommandError(72, "cannot drop _id index")
    for ix in targets:
        del c.indexes[ix.name]
    return {"nIndexesWas": was, "ok": 1.0}


def h_collmod(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "collMod")
    c = s.store.get(db, name)
    if c is None:
        raise CommandError(26, "ns does not exist")
    reply = {"ok": 1.0}
    idx = cmd.get("index")
    if idx is not None:
        if "name" in idx:
            ix = _find_index(c, idx["name"])
        elif "keyPattern" in idx:
            ix = _find_index(c, idx["keyPattern"])
        else:
            raise CommandError(72, "must specify either index name or key pattern")
        if "expireAfterSeconds" in idx:
            if "expireAfterSeconds" not in ix.spec:
                raise CommandError(72, "no expireAfterSeconds field to update")
            new = idx["expireAfterSeconds"]
            if isinstance(new, bool) or not isinstance(new, (int, float)) or new < 0:
                raise CommandError(2, "expireAfterSeconds must be a non-negative number")
            reply["expireAfterSeconds_old"] = ix.spec["expireAfterSeconds"]
            reply["expireAfterSeconds_new"] = new
            ix.spec["expireAfterSeconds"] = new
        if "hidden" in idx:
            reply["hidden_old"] = bool(ix.spec.get("hidden", False))
            reply["hidden_new"] = bool(idx["hidden"])
            if idx["hidden"]:
                ix.spec["hidden"] = True
            else:
                ix.spec.pop("hidden", None)
    return reply


def h_drop(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "drop")
    colls = s.store.dbs.get(db, {})
    c = colls.pop(name, None)
    if c is None:
        raise CommandError(26, "ns not found")
    _kill_ns(s, c.ns)
    return {"nIndexesWas": len(c.indexes), "ns": c.ns, "ok": 1.0}


def _kill_ns(s, ns):
    for cid in [k for k, cur in s.cursors.items() if cur.ns == ns or ns.endswith(".") and
                cur.ns.startswith(ns)]:
        del s.cursors[cid]


def h_drop_database(s, cmd, rawcmd, db, conn_id):
    s.store.dbs.pop(db, None)
    _kill_ns(s, db + ".")
    return {"dropped": db, "ok": 1.0}


def h_list_collections(s, cmd, rawcmd, db, conn_id):
    out = []
    for name, c in s.store.dbs.get(db, {}).items():
        d = {"name": name, "type": "collection", "options": {},
             "info": {"readOnly": False, "uuid": c.uuid},
             "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}}
        filt = cmd.get("filter")
        if filt and not mongomock.filtering.filter_applies(filt, d):
            continue
        if cmd.get("nameOnly"):
            d = {"name": name, "type": "collection"}
        out.append(encode(d))
    bs = (cmd.get("cursor") or {}).get("batchSize")
    return s.cursor_reply("%s.$cmd.listCollections" % db, out, 101 if bs is None else int(bs))


def h_list_databases(s, cmd, rawcmd, db, conn_id):
    dbs = [{"name": n, "sizeOnDisk": float(sum(c.size() for c in colls.values())),
            "empty": not colls} for n, colls in s.store.dbs.items()]
    if cmd.get("nameOnly"):
        dbs = [{"name": d["name"]} for d in dbs]
    return {"databases": dbs, "totalSize": float(sum(d.get("sizeOnDisk", 0) for d in dbs)),
            "ok": 1.0}


def h_coll_stats(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, "collStats")
    out = _coll_stats(s.store.get(db, name), "%s.%s" % (db, name))
    out["ok"] = 1.0
    return out


def h_data_size(s, cmd, rawcmd, db, conn_id):
    ns = cmd["dataSize"]
    dbn, _, cn = ns.partition(".")
    c = s.store.get(dbn, cn)
    return {"size": c.size() if c else 0, "numObjects": len(c.docs) if c else 0,
            "millis": 0, "ok": 1.0}


def h_db_stats(s, cmd, rawcmd, db, conn_id):
    colls = s.store.dbs.get(db, {})
    size = sum(c.size() for c in colls.values())
    objs = sum(len(c.docs) for c in colls.values())
    return {"db": db, "collections": len(colls), "views": 0, "objects": objs,
            "avgObjSize": size / objs if objs else 0, "dataSize": float(size),
            "storageSize": float(size), "indexes": sum(len(c.indexes) for c in colls.values()),
            "indexSize": 0.0, "ok": 1.0}


def h_find_and_modify(s, cmd, rawcmd, db, conn_id):
    name = _coll_name(cmd, next(iter(cmd)))
    c = s.store.get(db, name, create=True)
    q = cmd.get("query") or {}
    matches = _query(c, q, cmd.get("sort"), 0, 1)
    fields = cmd.get("fields")
    before = matches[0] if matches else None
    result, last = None, {"n": 0, "updatedExisting": False}
    if cmd.get("remove"):
        if before is not None:
            c.remove(norm(before.doc["_id"]))
            result = before
            last = {"n": 1}
    else:
        u = cmd.get("update")
        raw_u = rawcmd.get("update")
        raw_u = raw_u.raw if isinstance(raw_u, RawBSONDocument) else None
        if u is None:
            raise CommandError(9, "Either an update or remove=true must be specified")
        if before is not None:
            _update_one_doc(c, before, u, raw_u)
            after = c.docs[norm(before.doc["_id"])]
            result = after if cmd.get("new") else before
            last = {"n": 1, "updatedExisting": True}
        elif cmd.get("upsert"):
            idv = _upsert(c, q, u, raw_u)
            last = {"n": 1, "updatedExisting": False, "upserted": idv}
            if cmd.get("new"):
                result = c.docs[norm(idv)]
    value = None
    if result is not None:
        value = RawBSONDocument(projected(result, fields), codec_options=RAW_OPTS)
    return {"lastErrorObject": last, "value": value, "ok": 1.0}


HANDLERS = {
    "hello": h_hello, "ismaster": h_hello,
    "buildinfo": h_buildinfo, "ping": h_ok, "endsessions": h_ok, "killallsessions": h_ok,
    "getlasterror": h_getlasterror, "serverstatus": h_server_status,
    "insert": h_insert, "update": h_update, "delete": h_delete,
    "find": h_find, "getmore": h_getmore, "killcursors": h_killcursors,
    "count": h_count, "distinct": h_distinct, "aggregate": h_aggregate,
    "create": h_create, "createindexes": h_create_indexes, "listindexes": h_list_indexes,
    "dropindexes": h_drop_indexes, "deleteindexes": h_drop_indexes, "collmod": h_collmod,
    "drop": h_drop, "dropdatabase": h_drop_database, "listcollections": h_list_collections,
    "listdatabases": h_list_databases, "collstats": h_coll_stats, "datasize": h_data_size,
    "dbstats": h_db_stats, "findandmodify": h_find_and_modify,
    "whatsmyuri": lambda s, c, r, d, i: {"you": "127.0.0.1", "ok": 1.0},
    "getcmdlineopts": lambda s, c, r, d, i: {"argv": ["mongod"], "parsed": {}, "ok": 1.0},
    "connectionstatus": lambda s, c, r, d, i: {
        "authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}, "ok": 1.0},
    "hostinfo": lambda s, c, r, d, i: {"system": {"hostname": "127.0.0.1"}, "ok": 1.0},
}


# --------------------------------------------------------------------------
# The wire.

def parse_op_msg(body):
    """(flags, body_raw, {identifier: [raw doc, ...]}) of an OP_MSG."""
    flags = struct.unpack_from("<I", body, 0)[0]
    end = len(body) - (4 if flags & 1 else 0)
    pos = 4
    main, seqs = None, {}
    while pos < end:
        kind = body[pos]
        pos += 1
        if kind == 0:
            n = struct.unpack_from("<i", body, pos)[0]
            main = body[pos:pos + n]
            pos += n
        elif kind == 1:
            size = struct.unpack_from("<i", body, pos)[0]
            sec_end = pos + size
            ident_end = body.index(b"\x00", pos + 4)
            ident = body[pos + 4:ident_end].decode()
            p = ident_end + 1
            docs = []
            while p < sec_end:
                n = struct.unpack_from("<i", body, p)[0]
                docs.append(body[p:p + n])
                p += n
            seqs.setdefault(ident, []).extend(docs)
            pos = sec_end
        else:
            raise ValueError("unknown OP_MSG section kind %d" % kind)
    if main is None:
        raise ValueError("OP_MSG without a body section")
    return flags, main, seqs


def op_msg_reply(request_id, doc):
    payload = b"\x00\x00\x00\x00\x00" + bson.encode(doc, codec_options=OPTS)
    return struct.pack("<iiii", 16 + len(payload), random.randint(1, 2 ** 30), request_id,
                       OP_MSG) + payload


def op_reply(request_id, doc):
    payload = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(doc, codec_options=OPTS)
    return struct.pack("<iiii", 16 + len(payload), random.randint(1, 2 ** 30), request_id,
                       OP_REPLY) + payload


class WireServer:
    def __init__(self, server, idle_timeout):
        self.s = server
        self.sock, addr = mockupdb.bind_tcp_socket(("127.0.0.1", 0))
        self.port = addr[1]
        self.conns = {}  # socket -> conn id
        self.conns_lock = threading.Lock()
        self.stopping = threading.Event()
        self.last_activity = time.monotonic()
        self.idle_timeout = idle_timeout

    def touch(self):
        self.last_activity = time.monotonic()

    def accept_loop(self):
        while not self.stopping.is_set():
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                client, addr = self.sock.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                continue
            self.touch()
            if self.s.refuse:
                log.info("refusing connection from %s:%d", *addr)
                client.close()
                continue
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cid = next(self.s.conn_ids)
            with self.conns_lock:
                self.conns[client] = cid
            threading.Thread(target=self.serve, args=(client, cid), daemon=True).start()

    def close_all(self):
        with self.conns_lock:
            socks = list(self.conns)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        return len(socks)

    def serve(self, client, cid):
        log.info("connection %d opened", cid)
        try:
            while not self.stopping.is_set():
                header = mockupdb.mock_server_receive(client, 16)
                length, request_id, _resp_to, opcode = struct.unpack("<iiii", header)
                if length < 16 or length > MAX_MESSAGE + 16 * 1024:
                    log.info("connection %d: bad message length %d", cid, length)
                    break
                body = mockupdb.mock_server_receive(client, length - 16)
                self.touch()
                if self.s.hang:
                    log.info("connection %d: hanging (opcode %d unanswered)", cid, opcode)
                    continue
                reply = self.handle(opcode, request_id, body, cid)
                if reply is not None:
                    client.sendall(reply)
        except (OSError, ValueError, struct.error) as ex:
            if not isinstance(ex, OSError):
                log.info("connection %d: %r", cid, ex)
        finally:
            with self.conns_lock:
                self.conns.pop(client, None)
            try:
                client.close()
            except OSError:
                pass
            log.info("connection %d closed", cid)

    def handle(self, opcode, request_id, body, cid):
        if opcode == OP_MSG:
            flags, main, seqs = parse_op_msg(body)
            try:
                cmd = decode(main)
                rawcmd = dict(RawBSONDocument(main, codec_options=RAW_OPTS).items())
                for ident, docs in seqs.items():
                    cmd[ident] = [decode(d) for d in docs]
                    rawcmd[ident] = [RawBSONDocument(d, codec_options=RAW_OPTS) for d in docs]
            except Exception as ex:
                reply = err_doc(2, "cannot decode the command: %s" % ex)
            else:
                db = cmd.pop("$db", "admin")
                for k in ("lsid", "$clusterTime", "$readPreference", "txnNumber",
                          "autocommit", "startTransaction", "$audit", "apiVersion",
                          "apiStrict", "apiDeprecationErrors"):
                    cmd.pop(k, None)
                reply = self.s.run_command(cmd, rawcmd, db, cid)
                log.debug("%s -> %s", next(iter(cmd), "?"), reply.get("ok"))
            if flags & 2:  # moreToCome: the client wants no answer
                return None
            return op_msg_reply(request_id, reply)
        if opcode == OP_QUERY:
            req = mockupdb.OpQuery.unpack(body, None, None, request_id)
            doc = dict(req.doc)
            if "$query" in doc:
                doc = dict(doc["$query"])
            if not isinstance(req, mockupdb.Command):
                return op_reply(request_id, {"$err": "legacy queries are not supported",
                                             "code": 2, "ok": 0.0})
            name = next(iter(doc), "").lower()
            if name not in ("hello", "ismaster", "buildinfo", "ping", "getlasterror"):
                reply = err_doc(2, "OP_QUERY is only for the handshake; use OP_MSG")
            else:
                reply = self.s.run_command(doc, {}, req.namespace, cid)
            return op_reply(request_id, reply)
        log.info("connection %d: unsupported opcode %d", cid, opcode)
        raise ValueError("unsupported opcode %d" % opcode)


class ControlServer:
    def __init__(self, server, wire, on_shutdown):
        self.s = server
        self.wire = wire
        self.on_shutdown = on_shutdown
        self.sock, addr = mockupdb.bind_tcp_socket(("127.0.0.1", 0))
        self.port = addr[1]

    def accept_loop(self):
        while not self.wire.stopping.is_set():
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                client, _ = self.sock.accept()
            except OSError:
                if self.wire.stopping.is_set():
                    return
                continue
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client):
        client.settimeout(60)
        f = client.makefile("rwb")
        try:
            for line in f:
                self.wire.touch()
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    answer = self.command(text.split())
                except Exception as ex:
                    answer = "error %s" % ex
                log.info("control: %s -> %s", text, answer[:200])
                f.write(answer.replace("\n", " ").encode() + b"\n")
                f.flush()
                if text == "shutdown":
                    self.on_shutdown()
                    break
        except OSError:
            pass
        finally:
            try:
                f.close()
                client.close()
            except OSError:
                pass

    def command(self, words):
        s = self.s
        cmd, args = words[0].lower(), words[1:]

        def onoff():
            if len(args) != 1 or args[0] not in ("on", "off"):
                raise ValueError("usage: %s on|off" % cmd)
            return args[0] == "on"
        if cmd == "refuse":
            s.refuse = onoff()
        elif cmd == "hang":
            s.hang = onoff()
        elif cmd == "close":
            self.wire.close_all()
        elif cmd == "errors":
            if len(args) < 2:
                raise ValueError("usage: errors CODE N [LABEL...]")
            code, n = int(args[0]), int(args[1])
            with s.lock:
                s.errors = (code, n, args[2:]) if n > 0 else None
        elif cmd == "wcerror":
            if len(args) != 2:
                raise ValueError("usage: wcerror CODE N")
            code, n = int(args[0]), int(args[1])
            with s.lock:
                s.wcerror = (code, n) if n > 0 else None
        elif cmd == "reset":
            s.reset_faults()
        elif cmd == "dropall":
            with s.lock:
                s.store.dbs.clear()
                s.cursors.clear()
        elif cmd == "shutdown":
            pass
        elif cmd == "stats":
            with s.lock:
                st = dict(s.stats)
            with self.wire.conns_lock:
                conns = len(self.wire.conns)
            return "ok " + json.dumps({"commands": st, "connections": conns,
                                       "cursors": len(s.cursors)}, sort_keys=True)
        elif cmd == "clearstats":
            with s.lock:
                s.stats.clear()
                s.last.clear()
        elif cmd == "last":
            if len(args) != 1:
                raise ValueError("usage: last COMMAND")
            with s.lock:
                doc = s.last.get(args[0])
            if doc is None:
                return "error no %s seen" % args[0]
            return "ok " + json_util.dumps(doc, json_options=json_util.CANONICAL_JSON_OPTIONS)
        elif cmd == "ttl":
            s.ttl_sweep()
        else:
            return "error unknown command %s" % cmd
        return "ok"


STARTED = time.monotonic()


def write_atomic(path, text):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, help="where port, control_port, pid, server.log go")
    ap.add_argument("--ttl-interval", type=float, default=1.0,
                    help="seconds between TTL monitor passes (0: never; mongod uses 60)")
    ap.add_argument("--idle-timeout", type=float, default=0,
                    help="exit after this many seconds without any wire or control traffic "
                         "(0: never); keeps a forgotten server from living forever")
    ap.add_argument("--verbose", action="store_true", help="log every command")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    for f in ("port", "control_port", "pid"):
        try:
            os.unlink(os.path.join(a.dir, f))
        except FileNotFoundError:
            pass
    logging.basicConfig(filename=os.path.join(a.dir, "server.log"),
                        level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s %(threadName)s %(message)s")
    server = Server(a.ttl_interval)
    wire = WireServer(server, a.idle_timeout)
    stop = threading.Event()
    control = ControlServer(server, wire, stop.set)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=wire.accept_loop, name="wire", daemon=True).start()
    threading.Thread(target=control.accept_loop, name="control", daemon=True).start()
    write_atomic(os.path.join(a.dir, "port"), "%d\n" % wire.port)
    write_atomic(os.path.join(a.dir, "control_port"), "%d\n" % control.port)
    write_atomic(os.path.join(a.dir, "pid"), "%d\n" % os.getpid())
    log.info("listening: wire 127.0.0.1:%d control 127.0.0.1:%d pid %d (%s)",
             wire.port, control.port, os.getpid(), VERSION)
    next_ttl = time.monotonic() + (a.ttl_interval or 0)
    while not stop.wait(0.2):
        now = time.monotonic()
        if a.ttl_interval and now >= next_ttl:
            try:
                server.ttl_sweep()
            except Exception:
                log.exception("ttl monitor")
            next_ttl = now + a.ttl_interval
        if a.idle_timeout and now - wire.last_activity > a.idle_timeout:
            log.info("idle for %.0f s: exiting", a.idle_timeout)
            break
    log.info("shutting down")
    wire.stopping.set()
    for sock in (wire.sock, control.sock):
        try:
            sock.close()
        except OSError:
            pass
    wire.close_all()
    for f in ("port", "control_port", "pid"):
        try:
            os.unlink(os.path.join(a.dir, f))
        except FileNotFoundError:
            pass
    logging.shutdown()


if __name__ == "__main__":
    main()
