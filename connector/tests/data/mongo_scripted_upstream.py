# A scripted MongoDB upstream for Gate's tests (connector/tests/mongodb_upstream.rs),
# written independently of Gate: SCRAM-SHA-256 server side (RFC 5802/7677, as
# mongod does it, skipEmptyExchange honoured), commands refused before login,
# OP_COMPRESSED replies in zlib, snappy and zstd (python-snappy, backports.zstd),
# one whose snappy data is cut short, and exhaust getMore streams
# (moreToCome). Prints "ready PORT".
# Every command it receives is logged to the file given as argv[2].
import base64, hashlib, hmac, os, socket, struct, sys, threading, zlib

import bson
import snappy
from backports import zstd

USER, PASSWORD = "gate_app", "upstream-pw"
SALT, ITER = os.urandom(16), 4096
salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, ITER)
client_key = hmac.new(salted, b"Client Key", "sha256").digest()
stored_key = hashlib.sha256(client_key).digest()
server_key = hmac.new(salted, b"Server Key", "sha256").digest()
log = open(sys.argv[2], "a", buffering=1)

DOCS = [{"_id": i, "email": f"user{i}@example.com", "name": f"n{i}"} for i in range(1, 7)]


def frame(body, request_id, response_to, opcode):
    return struct.pack("<iiii", 16 + len(body), request_id, response_to, opcode) + body


def op_msg(doc, response_to, flags=0):
    return frame(struct.pack("<I", flags) + b"\x00" + bson.encode(doc), 99, response_to, 2013)


def compressed(message, compressor=2, corrupt=False):
    inner = message[16:]
    data = {1: snappy.compress, 2: zlib.compress, 3: zstd.compress}[compressor](inner)
    if corrupt:
        data = data[: len(data) // 2]
    _, request_id, response_to, opcode = struct.unpack("<iiii", message[:16])
    body = struct.pack("<iiB", opcode, len(inner), compressor) + data
    return frame(body, request_id, response_to, 2012)


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def parse(message):
    flags = struct.unpack("<I", message[16:20])[0]
    body, at = None, 20
    while at < len(message):
        kind = message[at]
        at += 1
        if kind == 0:
            size = struct.unpack("<i", message[at:at + 4])[0]
            body = bson.decode(message[at:at + size])
            at += size
        else:
            size = struct.unpack("<i", message[at:at + 4])[0]
            at += size
    return flags, body


def serve(sock):
    state = {"authed": False}
    try:
        while True:
            header = read_exact(sock, 16)
            length, request_id, _, opcode = struct.unpack("<iiii", header)
            message = header + read_exact(sock, length - 16)
            if opcode != 2013:
                log.write(f"opcode {opcode}\n")
                return
            flags, cmd = parse(message)
            name = next(iter(cmd))
            txn = "txnNumber" in cmd and "lsid" in cmd
            log.write(f"{name} {cmd.get(name)!r} authed={state['authed']} txn={txn}\n")
            for reply in answer(name, cmd, flags, state, request_id):
                sock.sendall(reply if isinstance(reply, bytes) else op_msg(reply, request_id))
    except EOFError:
        pass
    finally:
        sock.close()


def answer(name, cmd, flags, state, rid):
    if name in ("hello", "isMaster", "ismaster"):
        return [{"isWritablePrimary": True, "maxWireVersion": 21, "minWireVersion": 0,
                 "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000,
                 "logicalSessionTimeoutMinutes": 30, "ok": 1.0}]
    if name == "saslStart":
        first = cmd["payload"].decode()
        bare = first.split(",", 2)[2]
        attrs = dict(p.split("=", 1) for p in bare.split(","))
        if attrs.get("n") != USER or cmd.get("mechanism") != "SCRAM-SHA-256":
            return [{"ok": 0.0, "code": 18, "codeName": "AuthenticationFailed", "errmsg": "Authentication failed."}]
        nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        server_first = f"r={nonce},s={base64.b64encode(SALT).decode()},i={ITER}"
        state["scram"] = (bare, server_first, nonce)
        return [{"conversationId": 1, "done": False, "payload": server_first.encode(), "ok": 1.0}]
    if name == "saslContinue":
        bare, server_first, nonce = state.pop("scram")
        final = cmd["payload"].decode()
        without_proof, proof = final.rsplit(",p=", 1)
        auth_message = f"{bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature))
        if f"r={nonce}" not in without_proof or hashlib.sha256(key).digest() != stored_key:
            return [{"ok": 0.0, "code": 18, "codeName": "AuthenticationFailed", "errmsg": "Authentication failed."}]
        state["authed"] = True
        verifier = base64.b64encode(hmac.new(server_key, auth_message, "sha256").digest()).decode()
        return [{"conversationId": 1, "done": True, "payload": f"v={verifier}".encode(), "ok": 1.0}]
    if name == "ping":
        return [{"ok": 1.0}]
    if not state["authed"]:
        return [{"ok": 0.0, "code": 13, "codeName": "Unauthorized", "errmsg": f"command {name} requires authentication"}]
    if name == "find":
        collection = cmd["find"]
        batch = DOCS[:2]
        reply = {"cursor": {"firstBatch": batch, "id": bson.Int64(7 if collection == "exhaust" else 0),
                            "ns": f"shop.{collection}"}, "ok": 1.0}
        if collection == "zlib":
            return [compressed(op_msg(reply, rid))]
        if collection == "snappy":
            return [compressed(op_msg(reply, rid), compressor=1)]
        if collection == "zstd":
            return [compressed(op_msg(reply, rid), compressor=3)]
        if collection == "corrupt":
            return [compressed(op_msg(reply, rid), compressor=1, corrupt=True)]
        return [reply]
    if name == "getMore":
        rest = [DOCS[2:4], DOCS[4:6]]
        replies = []
        exhaust = flags & (1 << 16)
        for i, batch in enumerate(rest):
            last = i == len(rest) - 1 or not exhaust
            doc = {"cursor": {"nextBatch": batch, "id": bson.Int64(0 if last else 7), "ns": "shop.exhaust"}, "ok": 1.0}
            replies.append(op_msg(doc, rid, flags=0 if last else 2))
            if last:
                break
        return replies
    return [{"ok": 1.0}]


listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(16)
print("ready", listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
