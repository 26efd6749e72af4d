#!/usr/bin/env python3
"""Independent verifier of motcua audit archives (format v1), written from docs/audit-format.md.

It shares no code with motcua: only the Python standard library (hashlib, json) and, for speed,
the `cryptography` package's Ed25519 (OpenSSL), which it calls only after making the strict
checks of the spec's section 5 itself; keys whose encoding OpenSSL would read differently are
verified by the pure-Python curve arithmetic below (also used everywhere with --pure).

    python3 verify.py ARCHIVE [--json] [--root-key HEX] [--witness OTHER_ARCHIVE]... [--pure]
    python3 verify.py --vectors docs/audit-vectors.json [--pure]

Exit status: 0 when the archive verifies (or every vector matches), 1 otherwise, 2 on usage errors.
"""

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # the test that runs this file requires the package; say so plainly
    sys.stderr.write("verify.py needs the 'cryptography' package: python3 -m pip install --user cryptography\n")
    sys.exit(2)

# ---------------------------------------------------------------------------------------------
# Section 5: Ed25519, strict.

P = 2**255 - 19
ELL = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
BY = 4 * pow(5, P - 2, P) % P


def _recover_x(y, sign):
    u = (y * y - 1) % P
    v = (D * y * y + 1) % P
    x2 = u * pow(v, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1:
        x = P - x
    if sign:
        x = (P - x) % P  # x = 0 with the sign bit set stays 0 (spec 5, rule 2)
    return x


def decode_point(b):
    """Spec 5 rule 2: y reduced mod p, x = 0 with sign bit accepted. Extended coordinates."""
    if len(b) != 32:
        return None
    n = int.from_bytes(b, "little")
    y = (n & ((1 << 255) - 1)) % P
    x = _recover_x(y, n >> 255)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def _add(p1, p2):
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    d = z1 * 2 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


IDENTITY = (0, 1, 1, 0)
BASE = (_recover_x(BY, 0), BY, 1, _recover_x(BY, 0) * BY % P)


def _mul(s, pt):
    q = IDENTITY
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _is_identity(pt):
    x, y, z, _ = pt
    return x % P == 0 and (y - z) % P == 0


def _small_order(pt):
    q = pt
    for _ in range(3):
        q = _add(q, q)
    return _is_identity(q)


def _encode(pt):
    x, y, z, _ = pt
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _canonical(b):
    """Whether these 32 bytes are the RFC 8032 encoding of the point they decode to."""
    pt = decode_point(b)
    return pt is not None and _encode(pt) == b


PURE = False


def verify_strict(key, message, sig):
    """Spec section 5, rules 1 to 5."""
    if len(key) != 32 or len(sig) != 64:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= ELL:
        return False
    a = decode_point(key)
    r = decode_point(sig[:32])
    if a is None or r is None or _small_order(a) or _small_order(r):
        return False
    if not PURE and _canonical(key) and _canonical(sig[:32]):
        # With S < l, canonical A and R, and neither of small order, OpenSSL's check is rule 5.
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(sig, message)
            return True
        except InvalidSignature:
            return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + key + message).digest(), "little") % ELL
    neg_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    return _encode(_add(_mul(s, BASE), _mul(k, neg_a))) == sig[:32]


# ---------------------------------------------------------------------------------------------
# Section 1 conventions.

HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})*$")


def unhex(text, length=None):
    if not isinstance(text, str) or not HEX_RE.match(text):
        return None
    b = bytes.fromhex(text)
    return b if length is None or len(b) == length else None


def unb64(text):
    if not isinstance(text, str):
        return None
    try:
        b = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(b).decode() != text or len(b) != 32:
        return None
    return b


def sha256(b):
    return hashlib.sha256(b).digest()


def ms_of_seconds(s):
    return max(-(2**63), min(2**63 - 1, s * 1000))


# ---------------------------------------------------------------------------------------------
# Sections 2 to 4: envelopes, document ids, change chunks.


class FormatError(Exception):
    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def parse_envelope(b):
    def need(n, at):
        if at + n > len(b):
            raise FormatError("envelope_format", "truncated at byte %d" % at)

    need(2, 0)
    if b[0] != 1:
        raise FormatError("envelope_format", "envelope version %d is not 1" % b[0])
    n = b[1]
    if n > 128:
        raise FormatError("envelope_format", "document id is not valid")
    need(n + 96 + 4, 2)
    try:
        doc_id = b[2 : 2 + n].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("envelope_format", "document id is not valid")
    at = 2 + n
    signer, signature = b[at : at + 32], b[at + 32 : at + 96]
    m = int.from_bytes(b[at + 96 : at + 100], "big")
    if m > 262144:
        raise FormatError("envelope_format", "change larger than the bound")
    start = at + 100
    need(m, start)
    if start + m != len(b):
        raise FormatError("envelope_format", "trailing bytes after byte %d" % (start + m))
    return doc_id, signer, signature, b[start : start + m]


UNIT_RE = re.compile(r"^[0-9A-Za-z.]{1,32}$")


def valid_date(y, m, d):
    if not 1 <= m <= 12 or d < 1:
        return False
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    days = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
    return d <= days


def doc_unit(doc_id):
    """Section 2.1: (valid, unit or None, kind)."""
    if len(doc_id.encode()) > 128:
        return False, None, None
    if doc_id in ("catalog", "calendar", "registry"):
        return True, None, doc_id
    if doc_id.startswith("dossier/"):
        parts = doc_id[len("dossier/") :].rsplit("-", 2)
        if len(parts) != 3:
            return False, None, None
        unit, date, number = parts
        ok = (
            UNIT_RE.match(unit)
            and re.fullmatch(r"[0-9]{6}", date)
            and re.fullmatch(r"[0-9]{4,5}", number)
            and valid_date(2000 + int(date[:2]), int(date[2:4]), int(date[4:]))
        )
        return (True, unit, "dossier") if ok else (False, None, None)
    for prefix, kind in (("ratings/", "ratings"), ("log/", "log")):
        if doc_id.startswith(prefix):
            rest = doc_id[len(prefix) :]
            if "/" not in rest:
                return False, None, None
            unit, day = rest.split("/", 1)
            ok = UNIT_RE.match(unit) and re.fullmatch(r"[0-9]{8}", day) and valid_date(int(day[:4]), int(day[4:6]), int(day[6:]))
            return (True, unit, kind) if ok else (False, None, None)
    return False, None, None


def uleb(b, at):
    value, shift, start = 0, 0, at
    while True:
        if at >= len(b):
            raise FormatError("change_format", "truncated at byte %d" % at)
        byte = b[at]
        at += 1
        if shift == 63 and byte > 1:
            raise FormatError("change_format", "bad LEB128 number at byte %d" % start)
        value |= (byte & 0x7F) << shift
        if byte & 0x80 == 0:
            if shift > 0 and byte == 0:
                raise FormatError("change_format", "bad LEB128 number at byte %d" % start)
            return value, at
        shift += 7
        if shift > 63:
            raise FormatError("change_format", "bad LEB128 number at byte %d" % start)


def sleb(b, at):
    value, shift, prev, start = 0, 0, 0, at
    while True:
        if at >= len(b):
            raise FormatError("change_format", "truncated at byte %d" % at)
        byte = b[at]
        at += 1
        if shift == 63 and byte not in (0, 0x7F):
            raise FormatError("change_format", "bad LEB128 number at byte %d" % start)
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte & 0x80 == 0:
            if shift > 7 and ((byte == 0 and prev & 0x40 == 0) or (byte == 0x7F and prev & 0x40)):
                raise FormatError("change_format", "bad LEB128 number at byte %d" % start)
            if byte & 0x40:
                value -= 1 << shift
            value = (value + 2**63) % 2**64 - 2**63  # wrap to 64 bits, as the spec's integers do
            return value, at
        if shift > 63:
            raise FormatError("change_format", "bad LEB128 number at byte %d" % start)
        prev = byte


def parse_change(b):
    """Section 3: returns a dict of the header fields and the hash."""
    if len(b) < 9 or b[:4] != b"\x85\x6f\x4a\x83":
        raise FormatError("change_format", "not an Automerge chunk")
    if b[8] != 1:
        raise FormatError("change_format", "chunk type %d is not a change" % b[8])
    length, at = uleb(b, 9)
    if len(b) - at != length:
        raise FormatError("change_format", "body length does not match")
    h = sha256(b[8:])

    def take(n, at):
        if n > len(b) - at:
            raise FormatError("change_format", "truncated at byte %d" % at)
        return b[at : at + n], at + n

    n_deps, at = uleb(b, at)
    deps_bytes, at = take(n_deps * 32, at)
    alen, at = uleb(b, at)
    actor, at = take(alen, at)
    seq, at = uleb(b, at)
    start_op, at = uleb(b, at)
    if start_op == 0:
        raise FormatError("change_format", "start op is zero")
    time, at = sleb(b, at)
    mlen, at = uleb(b, at)
    message, at = take(mlen, at)
    try:
        message = message.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("change_format", "message is not UTF-8")
    others, at = uleb(b, at)
    for _ in range(others):
        olen, at = uleb(b, at)
        _, at = take(olen, at)
    return {
        "hash": h,
        "checksum_ok": b[4:8] == h[:4],
        "deps": [deps_bytes[i : i + 32] for i in range(0, len(deps_bytes), 32)],
        "actor": actor,
        "seq": seq,
        "start_op": start_op,
        "time": time,
        "message": message,
    }


def signing_message(doc_id, change_hash):
    d = doc_id.encode()
    return b"motcua/change/v1\x00" + bytes([len(d)]) + d + change_hash


# ---------------------------------------------------------------------------------------------
# Section 6: the registry.


class Registry:
    def __init__(self, root):
        self.root = root
        self.records = {}  # id -> body dict
        self.keys = {}

    def insert(self, record):
        """Returns None when accepted, else (reason, message)."""
        if not isinstance(record, dict) or not isinstance(record.get("body"), str) or not isinstance(record.get("signature"), str):
            return ("registry_malformed", "record is not {body, signature}")
        body = record["body"]
        if len(body.encode()) > 2048:
            return ("registry_malformed", "record too large")
        sig = unhex(record["signature"], 64)
        if sig is None:
            return ("registry_malformed", "signature is not 64 hex bytes")
        if not verify_strict(self.root, b"motcua/registry/v1\x00" + body.encode(), sig):
            return ("registry_signature", "registry record not signed by the root key")
        try:
            b = json.loads(body)
        except ValueError as e:
            return ("registry_malformed", str(e))
        if not self._shape_ok(b):
            return ("registry_malformed", "not an enrolment or revocation")
        rid = record["signature"][:32]
        if rid in self.records:
            return None
        if len(self.records) >= 10000:
            return ("registry_full", "registry holds 10000 records")
        key = unhex(b["node_key"], 32)
        if key is None or decode_point(key) is None:
            return ("registry_malformed", "node key is not a valid point")
        self.records[rid] = b
        self._rebuild()
        return None

    @staticmethod
    def _shape_ok(b):
        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63

        if not isinstance(b, dict) or not isinstance(b.get("node_key"), str):
            return False
        if b.get("type") == "enrolment":
            return (
                isinstance(b.get("unit"), str)
                and UNIT_RE.match(b["unit"]) is not None
                and isinstance(b.get("unit_name"), str)
                and b.get("role") in ("province", "commune", "auditor")
                and is_int(b.get("valid_from"))
                and (b.get("valid_until") is None or is_int(b.get("valid_until")))
                and is_int(b.get("issued_at"))
            )
        if b.get("type") == "revocation":
            return is_int(b.get("revoked_at")) and isinstance(b.get("reason"), str) and is_int(b.get("issued_at"))
        return False

    def _rebuild(self):
        keys, revocations = {}, {}
        for rid in sorted(self.records):
            b = self.records[rid]
            key = unhex(b["node_key"], 32)
            if b["type"] == "enrolment":
                if key not in keys or b["valid_from"] > keys[key]["valid_from"]:
                    keys[key] = {
                        "unit": b["unit"],
                        "unit_name": b["unit_name"],
                        "role": b["role"],
                        "valid_from": b["valid_from"],
                        "valid_until": b.get("valid_until"),
                        "revoked_at": None,
                    }
            else:
                at = b["revoked_at"]
                revocations[key] = min(at, revocations.get(key, at))
        for key, at in revocations.items():
            if key in keys:
                keys[key]["revoked_at"] = at
        self.keys = keys

    def check_key(self, key, at):
        s = self.keys.get(key)
        if s is None:
            return None, "not_enrolled"
        if s["revoked_at"] is not None and at >= s["revoked_at"]:
            return None, "revoked"
        if at < s["valid_from"] or (s["valid_until"] is not None and at >= s["valid_until"]):
            return None, "outside_validity"
        return s, None


# ---------------------------------------------------------------------------------------------
# Sections 7 and 8: the Merkle log and checkpoints.

EMPTY_ROOT = sha256(b"")


def leaf_hash(d):
    return sha256(b"\x00" + d)


def node_hash(a, b):
    return sha256(b"\x01" + a + b)


def split(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def verify_consistency(old, new, old_root, new_root, proof):
    """Section 7.1 (RFC 9162 2.1.4.2)."""
    if old > new:
        return False
    if old == 0:
        return not proof
    if old == new:
        return not proof and old_root == new_root
    path = ([old_root] if old & (old - 1) == 0 else []) + list(proof)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def replay_range_proof(size, leaves, entries):
    """Section 7.2. leaves: sorted list of (index, hash); entries: list of (start, end, hash)."""
    missing, unused = [], []
    out_of_range = [i for i, _ in leaves if i >= size]
    leaves = [(i, h) for i, h in leaves if i < size]
    indices = [i for i, _ in leaves]
    pos = [0]

    import bisect

    def rec(lo, hi, a, b):
        while pos[0] < len(entries):
            e = entries[pos[0]]
            if e[1] <= lo and not (e[0] == lo and e[1] == hi):
                unused.append(e)
                pos[0] += 1
            else:
                break
        f = bisect.bisect_left(indices, lo, a, b)
        t = bisect.bisect_left(indices, hi, a, b)
        if pos[0] < len(entries) and entries[pos[0]][0] == lo and entries[pos[0]][1] == hi:
            e = entries[pos[0]]
            pos[0] += 1
            if f != t:
                unused.append(e)
            else:
                return e[2]
        # Nothing exported here and no entry starting inside: the whole range is missing (at
        # once, so a forged size of 2^60 does not take forever).
        inside = pos[0] < len(entries) and lo <= entries[pos[0]][0] < hi
        if f == t and not inside:
            if missing and missing[-1][1] == lo:
                missing[-1] = (missing[-1][0], hi)
            else:
                missing.append((lo, hi))
            return bytes(32)
        if hi - lo == 1:
            if f != t and indices[f] == lo:
                return leaves[f][1]
            if missing and missing[-1][1] == lo:
                missing[-1] = (missing[-1][0], hi)
            else:
                missing.append((lo, hi))
            return bytes(32)
        k = split(hi - lo)
        left = rec(lo, lo + k, f, t)
        right = rec(lo + k, hi, f, t)
        return node_hash(left, right)

    root = EMPTY_ROOT
    if size > 0:
        sys.setrecursionlimit(max(1000, sys.getrecursionlimit()))
        root = rec(0, size, 0, len(indices))
    unused.extend(entries[pos[0] :])
    return root, missing, unused, out_of_range


DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)$")
ORIGIN_PREFIX = "motcua/log/v1/"


def open_note(note):
    """Section 8: returns (checkpoint dict, None) or (None, reason)."""
    if not isinstance(note, str) or len(note.encode()) > 1024:
        return None, "note_too_large"
    cut = note.rfind("\n\n")
    if cut < 0:
        return None, "note_malformed"
    text, sigs = note[: cut + 1], note[cut + 2 :]
    lines = text[:-1].split("\n")
    if len(lines) != 5:
        return None, "note_malformed"
    origin, size, root, time, prev = lines
    if not origin.startswith(ORIGIN_PREFIX) or not re.fullmatch(r"[0-9a-f]{64}", origin[len(ORIGIN_PREFIX) :]):
        return None, "note_malformed"
    key = bytes.fromhex(origin[len(ORIGIN_PREFIX) :])
    if not DECIMAL_RE.match(size) or unb64(root) is None:
        return None, "note_malformed"
    if not time.startswith("time "):
        return None, "note_malformed"
    t = time[5:]
    neg = t.startswith("-")
    digits = t[1:] if neg else t
    if not DECIMAL_RE.match(digits) or (neg and digits == "0"):
        return None, "note_malformed"
    tval = -int(digits) if neg else int(digits)
    if not -(2**63) <= tval < 2**63 or int(size) >= 2**64:
        return None, "note_malformed"
    parts = prev.split(" ")
    if len(parts) != 3 or parts[0] != "prev" or not DECIMAL_RE.match(parts[1]) or unb64(parts[2]) is None:
        return None, "note_malformed"
    if int(parts[1]) > int(size):
        return None, "note_malformed"
    if not sigs.endswith("\n") or "\n" in sigs[:-1]:
        return None, "note_malformed"
    line = sigs[:-1]
    prefix = "\u2014 " + origin + " "
    if not line.startswith(prefix):
        return None, "note_signature"
    try:
        raw = base64.b64decode(line[len(prefix) :], validate=True)
    except (binascii.Error, ValueError):
        return None, "note_signature"
    kid = sha256(origin.encode() + b"\n\x01" + key)[:4]
    if len(raw) != 68 or raw[:4] != kid:
        return None, "note_signature"
    if decode_point(key) is None:
        return None, "note_key"
    if not verify_strict(key, text.encode(), raw[4:]):
        return None, "note_signature"
    return {
        "key": key,
        "size": int(size),
        "root": unb64(root),
        "time": tval,
        "prev_size": int(parts[1]),
        "prev_root": unb64(parts[2]),
    }, None


# ---------------------------------------------------------------------------------------------
# Section 9: the container.

SECTIONS = ["registry", "log", "witness", "forks", "rejects", "changes", "manifest", "signature"]


class Report:
    def __init__(self):
        self.failures = []
        self.anomalies = []
        self.checks = {
            "changes": 0,
            "signatures_valid": 0,
            "registry_records": 0,
            "checkpoints": 0,
            "witnessed_logs": 0,
            "witnessed_checkpoints": 0,
            "fork_proofs": 0,
            "rejects": 0,
            "transfer_unchecked": 0,
        }
        self.units = {}

    def fail(self, reason, record, message, hash_=None, unit=None):
        self.failures.append({"reason": reason, "record": record, "message": message, "hash": hash_, "unit": unit})
        if unit is not None:
            self.unit(unit)["failures"] += 1

    def anomaly(self, reason, record, message, hash_=None, unit=None):
        self.anomalies.append({"reason": reason, "record": record, "message": message, "hash": hash_, "unit": unit})
        if unit is not None:
            self.unit(unit)["anomalies"] += 1

    def unit(self, u):
        return self.units.setdefault(u, {"changes": 0, "documents": 0, "signers": {}, "failures": 0, "anomalies": 0, "rejects": {}})


def strict_object(obj, required, optional=()):
    return isinstance(obj, dict) and set(required) <= set(obj) and set(obj) <= set(required) | set(optional)


def parse_container(b, r):
    """Returns {name: payload} for the sections found."""
    found = {}
    if b[:16] != b"motcua/audit/v1\n":
        r.fail("archive_format", "section archive", "does not start with the magic")
        return found, {}
    at = 16
    offsets = {}
    for kind, name in enumerate(SECTIONS, start=1):
        if at + 9 > len(b):
            r.fail("archive_format", "section archive", "ends before the %s section" % name)
            return found, offsets
        if b[at] != kind:
            r.fail("archive_format", "section archive", "byte %d: section kind %d where %d was expected" % (at, b[at], kind))
            return found, offsets
        length = int.from_bytes(b[at + 1 : at + 9], "big")
        if at + 9 + length > len(b):
            r.fail("archive_format", "section " + name, "runs past the end of the file")
            return found, offsets
        found[name] = b[at + 9 : at + 9 + length]
        offsets[name] = at + 9
        at += 9 + length
    if at != len(b):
        r.fail("archive_format", "section archive", "bytes after the signature section")
    return found, offsets


def load_json(found, name, r, default):
    if name not in found:
        return default
    try:
        return json.loads(found[name].decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        r.fail("archive_format", "section " + name, "malformed JSON: %s" % e)
        return default


def parse_changes(payload, r):
    out = []
    if payload is None:
        return out
    if len(payload) < 8:
        r.fail("archive_format", "section changes", "shorter than its count")
        return out
    count = int.from_bytes(payload[:8], "big")
    at = 8
    for position in range(count):
        if at + 12 > len(payload):
            r.fail("archive_format", "section changes", "change #%d: record header truncated" % position)
            return out
        leaf = int.from_bytes(payload[at : at + 8], "big")
        length = int.from_bytes(payload[at + 8 : at + 12], "big")
        if at + 12 + length > len(payload):
            r.fail("archive_format", "section changes", "change #%d: envelope runs past the section" % position)
            return out
        out.append((position, leaf, payload[at + 12 : at + 12 + length]))
        at += 12 + length
    if at != len(payload):
        r.fail("archive_format", "section changes", "bytes after the last change")
    return out


# ---------------------------------------------------------------------------------------------
# Section 10: verification.

CLOCK_SKEW_MS_MAX = 10 * 60 * 1000


def checkpoint_records(records, key, label, prefix, r):
    """Opens checkpoint records of `key`; returns [(checkpoint, proof, record name)]."""
    out = []
    if not isinstance(records, list):
        r.fail("archive_format", label, "checkpoints is not a list")
        return out
    for k, rec in enumerate(records):
        name = "%s checkpoint #%d" % (label, k)
        if not strict_object(rec, ["note", "consistency"]) or not isinstance(rec["consistency"], list):
            r.fail("archive_format", name, "not a checkpoint record")
            continue
        cp, why = open_note(rec["note"])
        if cp is None:
            r.fail(prefix + why, name, "the checkpoint note does not open")
            continue
        if cp["key"] != key:
            r.fail(prefix + "checkpoint_key", name, "note signed by another key")
            continue
        proof = [unb64(h) for h in rec["consistency"]]
        if any(h is None for h in proof):
            r.fail(prefix + "checkpoint_proof", name, "consistency proof hash is not canonical base64")
            continue
        out.append((cp, proof, name))
    return out


def verify_archive(b, root_key=None, witness_logs=()):
    r = Report()
    found, offsets = parse_container(b, r)
    registry_json = load_json(found, "registry", r, {"root_key": "", "records": []})
    log_json = load_json(found, "log", r, {"key": "", "checkpoints": [], "proof": []})
    witness_json = load_json(found, "witness", r, {"logs": []})
    forks_json = load_json(found, "forks", r, [])
    rejects_json = load_json(found, "rejects", r, [])
    manifest = load_json(found, "manifest", r, {})
    for name, obj, req, opt in (
        ("registry", registry_json, ["root_key", "records"], []),
        ("log", log_json, ["key", "checkpoints", "proof"], []),
        ("witness", witness_json, ["logs"], []),
    ):
        if not strict_object(obj, req, opt):
            r.fail("archive_format", "section " + name, "unexpected shape")
    changes = parse_changes(found.get("changes"), r)

    # Manifest.
    exporter = None
    if "manifest" in found:
        shape_ok = (
            strict_object(manifest, ["format", "exporter", "created_at", "filter", "changes", "log", "sections"])
            and strict_object(manifest["exporter"], ["key", "unit", "unit_name", "role"])
            and strict_object(manifest["filter"], ["units", "kinds"], ["from", "to"])
            and strict_object(manifest["log"], ["size", "root"])
            and isinstance(manifest["sections"], list)
            and all(strict_object(d, ["name", "bytes", "sha256"]) for d in manifest["sections"])
        )
        if not shape_ok:
            r.fail("archive_format", "section manifest", "unexpected shape")
            manifest = manifest if isinstance(manifest, dict) else {}
        if manifest.get("format") != "motcua/audit/v1":
            r.fail("manifest", "manifest", "format is not motcua/audit/v1")
        exp = manifest.get("exporter") if isinstance(manifest.get("exporter"), dict) else {}
        exporter = unhex(exp.get("key"), 32)
        sig = found.get("signature")
        if exporter is None:
            r.fail("manifest_signature", "manifest", "exporter key is not 32 hex bytes")
        elif sig is None or len(sig) != 64 or not verify_strict(exporter, b"motcua/archive/v1\x00" + found["manifest"], sig):
            r.fail("manifest_signature", "manifest", "the exporter's signature over the manifest does not verify")
        sections = manifest.get("sections") if isinstance(manifest.get("sections"), list) else []
        for i, name in enumerate(SECTIONS[:6]):
            if name not in found:
                continue
            d = sections[i] if i < len(sections) and isinstance(sections[i], dict) else {}
            digest = hashlib.sha256(found[name]).hexdigest()
            if d.get("name") != name or d.get("bytes") != len(found[name]) or d.get("sha256") != digest:
                r.fail("section_digest", "section " + name, "not what the signed manifest lists")
        if len(sections) != 6:
            r.fail("manifest", "manifest", "does not list 6 sections")
        if manifest.get("changes") != len(changes):
            r.fail("change_count", "section changes", "holds %d changes where the manifest lists %s" % (len(changes), manifest.get("changes")))

    # Registry.
    registry = None
    root = unhex(registry_json.get("root_key") if isinstance(registry_json, dict) else None, 32)
    if root is None:
        r.fail("root_key", "section registry", "root key is not 32 hex bytes")
    else:
        if root_key is not None and root_key != root:
            r.fail("root_key", "section registry", "archive names another root key than the one trusted")
        if decode_point(root) is None:
            r.fail("root_key", "section registry", "root key is not a valid Ed25519 key")
        else:
            registry = Registry(root)
            records = registry_json.get("records") if isinstance(registry_json.get("records"), list) else []
            for i, rec in enumerate(records):
                why = registry.insert(rec)
                if why is None:
                    r.checks["registry_records"] += 1
                else:
                    rid = rec.get("signature", "")[:32] if isinstance(rec, dict) and isinstance(rec.get("signature"), str) else ""
                    r.fail(why[0], "registry record #%d (%s)" % (i, rid), why[1])
    if registry is None:
        registry = Registry(bytes(32))
    if exporter is not None and exporter not in registry.keys:
        r.fail("exporter_not_enrolled", "manifest", "the exporter holds no enrolment")

    # Changes.
    r.checks["changes"] = len(changes)
    entries = []
    seen = {}
    docs = {}
    last_leaf = None
    for position, leaf, env in changes:
        record = "change #%d (leaf %d)" % (position, leaf)
        if last_leaf is not None and leaf <= last_leaf:
            r.fail("leaf_order", "%s after change #%d (leaf %d)" % (record, position - 1, last_leaf), "changes must be in strictly increasing log order")
        last_leaf = leaf
        try:
            doc_id, signer, signature, raw = parse_envelope(env)
        except FormatError as e:
            r.fail(e.reason, record, str(e))
            continue
        ok, unit, kind = doc_unit(doc_id)
        if not ok:
            r.fail("doc_id", record, "invalid document id %r" % doc_id)
            continue
        try:
            h = parse_change(raw)
        except FormatError as e:
            r.fail(e.reason, record, str(e))
            continue
        unit = unit if unit is not None else "*"
        e = {"position": position, "leaf": leaf, "doc": doc_id, "signer": signer, "signature": signature, "h": h, "unit": unit, "kind": kind}
        e["record"] = "change #%d (leaf %d, %s)" % (position, leaf, doc_id)
        hx = h["hash"].hex()
        if not h["checksum_ok"]:
            r.fail("checksum", e["record"], "checksum is not the hash's first four bytes", hx, unit)
        if len(h["actor"]) != 40 or h["actor"][:32] != signer:
            r.fail("actor_binding", e["record"], "actor is not bound to the signer", hx, unit)
        if h["hash"] in seen:
            r.fail("duplicate_change", e["record"], "also change #%d" % seen[h["hash"]], hx, unit)
        seen.setdefault(h["hash"], position)
        u = r.unit(unit)
        u["changes"] += 1
        u["signers"][signer.hex()] = u["signers"].get(signer.hex(), 0) + 1
        if doc_id not in docs.setdefault(unit, set()):
            docs[unit].add(doc_id)
            u["documents"] += 1
        entries.append(e)
    for e in entries:
        hx = e["h"]["hash"].hex()
        if verify_strict(e["signer"], signing_message(e["doc"], e["h"]["hash"]), e["signature"]):
            r.checks["signatures_valid"] += 1
        else:
            r.fail("signature", e["record"], "the signature does not verify (strict Ed25519)", hx, e["unit"])
        at = ms_of_seconds(e["h"]["time"])
        standing, why = registry.check_key(e["signer"], at)
        if standing is None:
            r.fail(why, e["record"], "signer may not sign at the change's time", hx, e["unit"])
            continue
        role, sunit = standing["role"], standing["unit"]
        if role == "province":
            continue
        if role == "auditor" or e["kind"] in ("catalog", "calendar", "registry"):
            r.fail("out_of_scope", e["record"], "outside the scope of %s %s" % (role, sunit), hx, e["unit"])
        elif e["unit"] != sunit:
            if e["kind"] == "dossier":
                # Section 6: needs the dossier's transfer events, i.e. an Automerge reader.
                r.checks["transfer_unchecked"] += 1
            else:
                r.fail("out_of_scope", e["record"], "outside the scope of %s %s" % (role, sunit), hx, e["unit"])
    slots = {}
    for e in entries:
        slot = (e["h"]["actor"], e["doc"], e["h"]["seq"])
        if slot in slots:
            f = slots[slot]
            if f["h"]["hash"] != e["h"]["hash"]:
                r.fail("equivocation", e["record"], "signer %s made two different changes with seq %d in %s" % (e["signer"].hex(), e["h"]["seq"], e["doc"]), e["h"]["hash"].hex(), e["unit"])
        else:
            slots[slot] = e

    # Exporter's log.
    own = []
    if exporter is not None:
        if unhex(log_json.get("key"), 32) != exporter:
            r.fail("log_key", "section log", "the log is not the exporter's")
        else:
            opened = checkpoint_records(log_json.get("checkpoints"), exporter, "log", "", r)
            for cp, proof, name in opened:
                prev = own[-1][0] if own else None
                expect = (prev["size"], prev["root"]) if prev else (0, EMPTY_ROOT)
                if (cp["prev_size"], cp["prev_root"]) != expect:
                    r.fail("checkpoint_chain", name, "does not name the previous checkpoint")
                if not verify_consistency(cp["prev_size"], cp["size"], cp["prev_root"], cp["root"], proof):
                    r.fail("checkpoint_inconsistent", name, "not an extension of its previous checkpoint")
                if prev and cp["time"] < prev["time"]:
                    r.anomaly("clock_checkpoint_regression", name, "made before the previous checkpoint")
                own.append((cp, proof, name))
            r.checks["checkpoints"] = len(own)
            if not own:
                if changes:
                    r.fail("no_checkpoint", "section log", "no signed checkpoint places the changes")
            else:
                last = own[-1][0]
                mlog = manifest.get("log") if isinstance(manifest.get("log"), dict) else {}
                if mlog.get("size") != last["size"] or unb64(mlog.get("root")) != last["root"]:
                    r.fail("manifest_log", "manifest", "the manifest's log is not the last checkpoint")
                entries_ok = True
                proof_entries = []
                for p in log_json.get("proof") if isinstance(log_json.get("proof"), list) else []:
                    if not strict_object(p, ["start", "end", "hash"]) or unb64(p["hash"]) is None:
                        entries_ok = False
                        break
                    proof_entries.append((p["start"], p["end"], unb64(p["hash"])))
                if not entries_ok:
                    r.fail("log_proof", "section log", "range proof holds a malformed entry")
                else:
                    leaves = sorted({leaf: leaf_hash(env) for _, leaf, env in changes}.items())
                    root, missing, unused, out_of_range = replay_range_proof(last["size"], leaves, proof_entries)
                    for a, z in missing:
                        which = "leaf %d" % a if z - a == 1 else "leaves %d to %d" % (a, z - 1)
                        r.fail("missing_leaf", which, "neither in the archive nor covered by the log proof")
                    for ent in unused:
                        r.fail("log_proof", "proof entry %d..%d" % (ent[0], ent[1]), "does not fit the log's shape")
                    for leaf in out_of_range:
                        for position, l2, _ in changes:
                            if l2 == leaf:
                                r.fail("leaf_out_of_range", "change #%d (leaf %d)" % (position, leaf), "past the last checkpoint")
                    if not missing and not unused and not out_of_range and root != last["root"]:
                        r.fail("log_root_mismatch", own[-1][2], "the changes do not reproduce the checkpoint's root")

    # Witnessed logs.
    by_key = {}
    logs = list(witness_json.get("logs") if isinstance(witness_json.get("logs"), list) else []) + list(witness_logs)
    for log in logs:
        if not strict_object(log, ["key", "checkpoints"]):
            r.fail("archive_format", "section witness", "not a witnessed log")
            continue
        key = unhex(log["key"], 32)
        if key is None:
            r.fail("witness_key", "witness log %s" % log["key"], "log key is not 32 hex bytes")
            continue
        by_key.setdefault(key, []).extend(log["checkpoints"] if isinstance(log["checkpoints"], list) else [])
    r.checks["witnessed_logs"] = sum(1 for k in by_key if k != exporter)
    for key, records in by_key.items():
        if key not in registry.keys:
            r.fail("witness_not_enrolled", "log %s" % key.hex(), "no enrolment for this log's key")
        opened = checkpoint_records(records, key, "witness log %s" % key.hex()[:16], "witness_", r)
        r.checks["witnessed_checkpoints"] += len(opened)
        roots = {}
        for cp, _, _ in opened:
            roots.setdefault(cp["size"], set()).add(cp["root"])
        if key == exporter:
            for cp, _, _ in own:
                roots.setdefault(cp["size"], set()).add(cp["root"])
        for size, s in sorted(roots.items()):
            if len(s) > 1:
                r.fail("log_fork", "log %s" % key.hex(), "%d different roots signed for size %d" % (len(s), size))
        for cp, proof, name in opened:
            if not verify_consistency(cp["prev_size"], cp["size"], cp["prev_root"], cp["root"], proof):
                r.fail("witness_inconsistent", name, "not an extension of its previous checkpoint")
        for cp, _, name in opened:
            s = roots.get(cp["prev_size"])
            if cp["prev_size"] > 0 and s is not None and cp["prev_root"] not in s:
                r.fail("log_fork", name, "extends a checkpoint whose root differs from the one signed for that size")
        if key == exporter:
            chain = {(cp["size"], cp["root"]) for cp, _, _ in own}
            for cp, _, name in opened:
                if (cp["size"], cp["root"]) not in chain:
                    r.fail("log_fork", name, "a witnessed checkpoint of the exporter is not in its own log")

    # Fork proofs.
    for k, proof in enumerate(forks_json if isinstance(forks_json, list) else []):
        r.checks["fork_proofs"] += 1
        name = "fork proof #%d" % k
        pair = []
        for field in ("first", "second"):
            env = unhex(proof.get(field)) if isinstance(proof, dict) else None
            try:
                doc_id, signer, signature, raw = parse_envelope(env) if env else (None,) * 4
                h = parse_change(raw) if raw else None
            except FormatError:
                h = None
            good = (
                h is not None
                and doc_unit(doc_id)[0]
                and h["checksum_ok"]
                and len(h["actor"]) == 40
                and h["actor"][:32] == signer
                and verify_strict(signer, signing_message(doc_id, h["hash"]), signature)
            )
            pair.append((doc_id, signer, h) if good else None)
        if None in pair:
            r.fail("fork_proof_invalid", name, "a fork proof must hold two envelopes that verify")
            continue
        (d1, s1, h1), (d2, s2, h2) = pair
        if not (s1 == s2 and h1["actor"] == h2["actor"] and d1 == d2 and h1["seq"] == h2["seq"] and h1["hash"] != h2["hash"]):
            r.fail("fork_proof_invalid", name, "not two different changes of one actor, document and seq")
            continue
        s = registry.keys.get(s1)
        r.fail("equivocation", name, "signer %s signed two changes with seq %d in %s" % (s1.hex(), h1["seq"], d1), h2["hash"].hex(), s["unit"] if s else None)

    # Clocks (anomalies).
    times = {e["h"]["hash"]: e["h"]["time"] for e in entries}
    sizes = [cp["size"] for cp, _, _ in own]
    import bisect

    for e in entries:
        hx = e["h"]["hash"].hex()
        for dep in e["h"]["deps"]:
            if dep in times:
                if e["h"]["time"] < times[dep]:
                    r.anomaly("clock_before_dependency", e["record"], "made before a change it depends on", hx, e["unit"])
            else:
                r.anomaly("dependency_absent", e["record"], "depends on %s, not in the archive" % dep.hex(), hx, e["unit"])
        i = bisect.bisect_right(sizes, e["leaf"])
        if i >= len(own):
            continue
        cp_time = own[i][0]["time"]
        at = ms_of_seconds(e["h"]["time"])
        if at > cp_time + CLOCK_SKEW_MS_MAX:
            r.anomaly("clock_after_log", e["record"], "claims a time after the exporter logged it", hx, e["unit"])
        s = registry.keys.get(e["signer"])
        if s and s["revoked_at"] is not None and at < s["revoked_at"] and cp_time >= s["revoked_at"] + CLOCK_SKEW_MS_MAX:
            r.anomaly("logged_after_revocation", e["record"], "first logged after its signer's revocation", hx, e["unit"])

    for rej in rejects_json if isinstance(rejects_json, list) else []:
        r.checks["rejects"] += 1
        doc = rej.get("doc") if isinstance(rej, dict) else None
        ok, unit, _ = doc_unit(doc) if isinstance(doc, str) else (False, None, None)
        reason = rej.get("reason") if isinstance(rej, dict) and isinstance(rej.get("reason"), str) else "unknown"
        rj = r.unit(unit if ok and unit else "*")["rejects"]
        rj[reason] = rj.get(reason, 0) + 1
    return r


def by_reason(findings):
    out = {}
    for f in findings:
        out[f["reason"]] = out.get(f["reason"], 0) + 1
    return dict(sorted(out.items()))


def report_json(r):
    return {
        "ok": not r.failures,
        "checks": r.checks,
        "failures": r.failures,
        "failures_by_reason": by_reason(r.failures),
        "anomalies": r.anomalies,
        "anomalies_by_reason": by_reason(r.anomalies),
        "units": {u: {k: v for k, v in d.items()} for u, d in sorted(r.units.items())},
    }


def report_text(r):
    lines = ["verification: %s" % ("VALID" if not r.failures else "INVALID")]
    lines.append("checked: " + ", ".join("%s %d" % kv for kv in r.checks.items()))
    for u, d in sorted(r.units.items()):
        lines.append("unit %s: %d changes in %d documents, %d anomalies, %d failures" % (u, d["changes"], d["documents"], d["anomalies"], d["failures"]))
        for key, n in sorted(d["signers"].items()):
            lines.append("  signer %s: %d changes" % (key, n))
    for a in r.anomalies:
        lines.append("anomaly [%s] %s: %s" % (a["reason"], a["record"], a["message"]))
    for f in r.failures:
        lines.append("FAILURE [%s] %s: %s" % (f["reason"], f["record"], f["message"]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Self-test against docs/audit-vectors.json.


def check_vectors(path):
    v = json.load(open(path, encoding="utf-8"))
    bad = []

    def expect(cond, what):
        if not cond:
            bad.append(what)

    m = v["merkle"]
    leaves = [bytes.fromhex(x) for x in m["leaves"]]
    for n, root in enumerate(m["roots"]):
        got = replay_range_proof(n, [(i, leaf_hash(leaves[i])) for i in range(n)], [])[0]
        expect(got.hex() == root, "merkle root of %d leaves" % n)
    for c in m["consistency"]:
        old_root = replay_range_proof(c["old"], [(i, leaf_hash(leaves[i])) for i in range(c["old"])], [])[0]
        new_root = bytes.fromhex(m["roots"][c["new"]])
        proof = [bytes.fromhex(h) for h in c["proof"]]
        expect(verify_consistency(c["old"], c["new"], old_root, new_root, proof), "consistency %d to %d" % (c["old"], c["new"]))
        if c["old"] > 0 and c["old"] < c["new"]:
            expect(not verify_consistency(c["old"], c["new"], leaf_hash(b"x"), new_root, proof), "bad consistency %d to %d" % (c["old"], c["new"]))
    for rp in v["range_proofs"]:
        ents = [(e["start"], e["end"], bytes.fromhex(e["hash"])) for e in rp["entries"]]
        ex = [(i, leaf_hash(leaves[i])) for i in rp["exported"]]
        root, missing, unused, oor = replay_range_proof(rp["size"], ex, ents)
        expect(root.hex() == rp["root"] and not missing and not unused and not oor, "range proof %r of %d" % (rp["exported"], rp["size"]))
        if ex:
            _, missing, _, _ = replay_range_proof(rp["size"], ex[1:], ents)
            expect(missing and missing[0][0] == ex[0][0], "range proof names a removed leaf")
    for c in v["changes"]:
        raw = bytes.fromhex(c["bytes"])
        try:
            h = parse_change(raw)
        except FormatError as e:
            expect(c.get("error") == e.reason, "change error %s" % c["bytes"][:24])
            continue
        expect("error" not in c, "change should have failed %s" % c["bytes"][:24])
        if "error" in c:
            continue
        expect(
            h["hash"].hex() == c["hash"]
            and h["checksum_ok"] == c["checksum_ok"]
            and h["actor"].hex() == c["actor"]
            and h["seq"] == c["seq"]
            and h["start_op"] == c["start_op"]
            and h["time"] == c["time"]
            and h["message"] == c["message"]
            and [d.hex() for d in h["deps"]] == c["deps"],
            "change fields %s" % c["hash"],
        )
    for e in v["envelopes"]:
        doc_id, signer, signature, raw = parse_envelope(bytes.fromhex(e["bytes"]))
        h = parse_change(raw)
        msg = signing_message(doc_id, h["hash"])
        expect(doc_id == e["doc_id"] and signer.hex() == e["signer"] and msg.hex() == e["signing_message"], "envelope fields")
        expect(verify_strict(signer, msg, signature) == e["valid"], "envelope validity %s" % doc_id)
    for s in v["signatures"]:
        got = verify_strict(bytes.fromhex(s["key"]), bytes.fromhex(s["message"]), bytes.fromhex(s["signature"]))
        expect(got == s["valid"], "signature vector %r" % s["name"])
    for p in v["points"]:
        pt = decode_point(bytes.fromhex(p["bytes"]))
        expect((pt is not None) == p["decodes"], "point decodes %s" % p["bytes"])
        if pt is not None:
            expect(_small_order(pt) == p["small_order"], "point small order %s" % p["bytes"])
    for n in v["notes"]:
        cp, _ = open_note(n["note"])
        expect((cp is not None) == n["valid"], "note validity")
        if cp is not None:
            expect(
                cp["size"] == n["size"] and base64.b64encode(cp["root"]).decode() == n["root"] and cp["time"] == n["time"] and cp["prev_size"] == n["prev_size"],
                "note fields",
            )
    for d in v["doc_ids"]:
        ok, unit, _ = doc_unit(d["id"])
        expect(ok == d["valid"] and (unit if ok else None) == d["unit"], "doc id %r" % d["id"])
    a = v["archive"]
    r = verify_archive(bytes.fromhex(a["bytes"]), root_key=bytes.fromhex(a["root_key"]))
    expect(not r.failures, "archive verifies: %r" % [f["reason"] for f in r.failures])
    expect(
        r.checks["changes"] == a["changes"]
        and r.checks["signatures_valid"] == a["signatures_valid"]
        and r.checks["registry_records"] == a["registry_records"]
        and r.checks["checkpoints"] == a["checkpoints"],
        "archive counts",
    )
    t = v["archive_tampered"]
    r = verify_archive(bytes.fromhex(t["bytes"]))
    expect(sorted(by_reason(r.failures)) == t["failure_reasons"], "tampered archive reasons %r" % sorted(by_reason(r.failures)))
    expect([f["hash"] for f in r.failures if f["reason"] == "signature"] == t["bad_signature_hashes"], "tampered archive names the change")
    return bad


def main(argv):
    global PURE
    ap = argparse.ArgumentParser(description="Verify a motcua audit archive (format v1) independently.")
    ap.add_argument("archive", nargs="?")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--root-key", help="the province root key (hex) to trust")
    ap.add_argument("--witness", action="append", default=[], help="another archive whose checkpoints must agree")
    ap.add_argument("--pure", action="store_true", help="pure-Python Ed25519 only")
    ap.add_argument("--vectors", help="check this implementation against docs/audit-vectors.json")
    args = ap.parse_args(argv)
    PURE = args.pure
    if args.vectors:
        bad = check_vectors(args.vectors)
        for b in bad:
            print("vector mismatch: %s" % b)
        print("vectors: %s" % ("all match" if not bad else "%d mismatches" % len(bad)))
        return 0 if not bad else 1
    if not args.archive:
        ap.print_usage()
        return 2
    root_key = unhex(args.root_key, 32) if args.root_key else None
    if args.root_key and root_key is None:
        print("--root-key must be 64 hex digits")
        return 2
    witness_logs = []
    for path in args.witness:
        try:
            other_bytes = open(path, "rb").read()
        except OSError as e:
            print("cannot read %s: %s" % (path, e))
            return 2
        other = Report()
        found, _ = parse_container(other_bytes, other)
        w = load_json(found, "witness", other, {"logs": []})
        lg = load_json(found, "log", other, {"key": "", "checkpoints": []})
        witness_logs.extend(w.get("logs", []) if isinstance(w, dict) else [])
        if isinstance(lg, dict):
            witness_logs.append({"key": lg.get("key"), "checkpoints": lg.get("checkpoints", [])})
    try:
        data = open(args.archive, "rb").read()
    except OSError as e:
        print("cannot read %s: %s" % (args.archive, e))
        return 2
    r = verify_archive(data, root_key, witness_logs)
    if args.json:
        print(json.dumps(report_json(r), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(report_text(r))
    return 0 if not r.failures else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
