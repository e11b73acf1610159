# MySQL transparency transcript (connector/tests/mysql_transparency.rs): the
# same statements through two real drivers, printed one line per result, so a
# run through Gate and a run direct to the same MariaDB can be compared.
# usage: python mysql_transparency.py PORT USER PASSWORD DATABASE
import datetime
import decimal
import hashlib
import io
import sys

import mysql.connector
import pymysql
import pymysql.cursors

port, user, password, database = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
count = 0


def emit(tag, *parts):
    global count
    count += 1
    print(f"#{count} {tag}", *[repr(p) for p in parts])


SETUP = [
    "SET time_zone = '+00:00'",
    "SET sql_mode = 'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO'",
    "DROP TABLE IF EXISTS t_types, t_tx, t_bulk",
    """CREATE TABLE t_types (id INT PRIMARY KEY AUTO_INCREMENT, ti TINYINT, su SMALLINT UNSIGNED,
        mi MEDIUMINT, bi BIGINT, bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, de DECIMAL(20,6), dw DECIMAL(65,30),
        dt DATETIME(6), ts TIMESTAMP(3) NULL, da DATE, tm TIME(6), yr YEAR, vc VARCHAR(100), ch CHAR(5),
        tx TEXT, bl BLOB, vb VARBINARY(16), bt BIT(10), en ENUM('a','b','c'), st SET('x','y','z'), js JSON,
        nu INT NULL) CHARSET utf8mb4""",
    "CREATE TABLE t_tx (id INT PRIMARY KEY, v VARCHAR(20) UNIQUE) ENGINE=InnoDB",
]

TEXT = [
    """INSERT INTO t_types (ti, su, mi, bi, bu, f, d, de, dw, dt, ts, da, tm, yr, vc, ch, tx, bl, vb, bt, en, st, js)
       VALUES (-128, 65535, -8388608, -9223372036854775808, 18446744073709551615, 1.5, -2.25e-300,
       '12345678901234.123456', '0.000000000000000000000000000001', '2024-02-29 23:59:59.999999',
       '2038-01-19 03:14:07.123', '1000-01-01', '-838:59:59.000000', 2155, 'héllo wörld ✓', 'ab',
       REPEAT('t', 300), X'00FF10806162FE', X'DEADBEEF00', b'1010101011', 'b', 'x,z',
       '{"a": [1, 2.5, "three", null, true], "b": {"c": "ü"}}')""",
    "INSERT INTO t_types (id) VALUES (10)",
    "INSERT INTO t_types (ti, vc, bl, js) VALUES (127, '', X'', '[]')",
    "SELECT * FROM t_types ORDER BY id",
    "SELECT id, bl, HEX(bl), LENGTH(bl), vb FROM t_types ORDER BY id",
    "SELECT bt, bt + 0, BIN(bt), en, st, FIND_IN_SET('z', st) FROM t_types WHERE id = 1",
    "SELECT js, JSON_EXTRACT(js, '$.a[1]'), JSON_TYPE(js), JSON_VALID(js) FROM t_types ORDER BY id",
    "SELECT de * 2, dw + 1, CAST(de AS DECIMAL(30,10)), ROUND(d, 3), f FROM t_types WHERE id = 1",
    "SELECT dt, DATE_ADD(dt, INTERVAL 1 MICROSECOND), ts, da, tm, yr, TIME_TO_SEC(tm) FROM t_types WHERE id = 1",
    "SELECT NULL, NULL IS NULL, COALESCE(nu, 'none'), nu FROM t_types ORDER BY id",
    "SELECT 1, -1, 18446744073709551615, 1.0e10, 'x', X'41', b'1', TRUE, 0.1 + 0.2",
    "SELECT CAST('2020-01-01' AS DATE), CAST(1 AS UNSIGNED), CAST(-1 AS SIGNED), CAST('1.5' AS DECIMAL(4,2))",
    "SELECT CONVERT('abc' USING latin1), CHARSET(CONVERT('abc' USING latin1)), _binary'bin'",
    "SELECT id AS renamed, t.vc AS `weird name`, 1 + 1 AS sum FROM t_types t WHERE id = 1",
    "SELECT COUNT(*), SUM(ti), AVG(su), MIN(dt), MAX(vc), GROUP_CONCAT(id ORDER BY id) FROM t_types",
    "SELECT 1 / 0",
    "SHOW WARNINGS",
    "SELECT CAST('12abc' AS SIGNED)",
    "SHOW WARNINGS",
    "INSERT IGNORE INTO t_tx VALUES (1, 'one'), (1, 'dup')",
    "SHOW WARNINGS",
    "SELECT * FROM no_such_table",
    "SELEKT 1",
    "SELECT no_such_column FROM t_types",
    "INSERT INTO t_tx VALUES (1, 'again')",
    "INSERT INTO t_tx VALUES (2, REPEAT('x', 30))",
    "INSERT INTO t_types (ti) VALUES (1000)",
    "SELECT * FROM t_types WHERE id = 1 FOR UPDATE NOWAIT LOCK",
    "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'custom failure', MYSQL_ERRNO = 1644",
    "SELECT 1; SELECT 2 AS two, 'b'; SELECT id FROM t_tx ORDER BY id",
    "INSERT INTO t_tx VALUES (5, 'five'); UPDATE t_tx SET v = 'FIVE' WHERE id = 5; SELECT * FROM t_tx WHERE id = 5",
    "SELECT 'before'; SELECT * FROM no_such_table; SELECT 'after'",
    "DELETE FROM t_tx WHERE id = 5; SELECT ROW_COUNT()",
    "UPDATE t_tx SET v = v WHERE id = 1",
    "UPDATE t_tx SET v = 'uno' WHERE id = 1",
    "BEGIN",
    "INSERT INTO t_tx VALUES (20, 'twenty')",
    "SELECT COUNT(*) FROM t_tx",
    "ROLLBACK",
    "SELECT COUNT(*) FROM t_tx",
    "START TRANSACTION",
    "INSERT INTO t_tx VALUES (21, 'a')",
    "SAVEPOINT sp1",
    "INSERT INTO t_tx VALUES (22, 'b')",
    "ROLLBACK TO SAVEPOINT sp1",
    "INSERT INTO t_tx VALUES (21, 'dup pk')",
    "COMMIT",
    "SELECT * FROM t_tx ORDER BY id",
    "SET @v = 41",
    "SELECT @v + 1, @@autocommit, @@session.sql_mode",
    "SELECT LAST_INSERT_ID(), DATABASE(), VERSION() LIKE '%MariaDB%'",
    "SHOW COLUMNS FROM t_tx",
    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't_tx' ORDER BY ORDINAL_POSITION",
    "EXPLAIN SELECT * FROM t_tx WHERE id = 1",
    "SELECT seq, seq * seq FROM seq_1_to_5",
    "DO SLEEP(0)",
    "SELECT REPEAT('z', 70000) AS big, LENGTH(REPEAT('z', 70000))",
]

# Parameters of every type a driver binds in the binary protocol (COM_STMT_EXECUTE).
PREPARED = [
    ("SELECT ? AS i, ? AS neg, ? AS big", (7, -42, 2**63 - 1)),
    ("SELECT ? AS f, ? AS d", (1.25, -3.5e100)),
    ("SELECT ? AS dec_param, ? + 0", (decimal.Decimal("12345.678901"), decimal.Decimal("-0.5"))),
    ("SELECT ? AS s, CHAR_LENGTH(?)", ("héllo ✓", "日本語")),
    ("SELECT ? AS b, HEX(?)", (b"\x00\xff\x80binary\x00", b"\x01\x02")),
    ("SELECT ? AS dt, ? AS da, ? AS tm", (datetime.datetime(2024, 2, 29, 23, 59, 59, 999999), datetime.date(1999, 12, 31), datetime.timedelta(hours=-25, microseconds=5))),
    ("SELECT ? AS n, ? IS NULL", (None, None)),
    ("SELECT ? AS t, ? AS fl", (True, False)),
    ("INSERT INTO t_types (ti, su, bi, f, d, de, dt, da, tm, vc, bl, en, st, js, nu) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
     (5, 500, -5, 0.5, 2.5, decimal.Decimal("99.5"), datetime.datetime(2001, 1, 1, 0, 0, 0, 1), datetime.date(2001, 1, 2), datetime.timedelta(seconds=3723), "prep", b"\x00\x01", "c", "y", '{"k": 1}', None)),
    # (Every column type in the binary row format; mysql-connector misreads a binary YEAR and a TIME past 24 days.)
    ("SELECT id, ti, su, mi, bi, bu, f, d, de, dw, dt, ts, da, vc, ch, tx, bl, vb, bt, en, st, js, nu FROM t_types WHERE id = ?", (1,)),
    ("SELECT * FROM t_types WHERE id > ? ORDER BY id", (1,)),
    ("SELECT id, vc FROM t_types WHERE vc = ? OR ti = ?", ("prep", 127)),
    ("SELECT * FROM no_such_table WHERE id = ?", (1,)),
    ("INSERT INTO t_tx VALUES (?, ?)", (1, "dup")),
    ("SELECT ? / 0", (1,)),
]


def canon(value):
    """A value whose repr is stable across runs."""
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, set):  # (SET columns; a set's order varies per process)
        return sorted(value)
    return value


def run_connector_text(conn):
    cur = conn.cursor()
    for sql in TEXT:
        try:
            cur.execute(sql)
            n = 0
            while True:
                if cur.description is not None:
                    desc = [(d[0], d[1], d[6], d[7]) for d in cur.description]
                    rows = [tuple(canon(v) for v in r) for r in cur.fetchall()]
                    emit("ct rows", n, desc, rows, cur.warning_count)
                else:
                    emit("ct ok", n, cur.rowcount, cur.lastrowid, cur.warning_count)
                n += 1
                if not cur.nextset():
                    break
        except mysql.connector.Error as e:
            emit("ct error", e.errno, e.sqlstate, e.msg)
        emit("ct status", conn.in_transaction)


def run_pymysql_text():
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database=database,
                           autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    cur = conn.cursor()
    for sql in SETUP[:2]:
        cur.execute(sql)
    for sql in TEXT:
        try:
            cur.execute(sql)
            n = 0
            while True:
                r = cur._result
                desc = None if cur.description is None else [d[:2] + d[3:] for d in cur.description]
                emit("py", n, desc, cur.fetchall(), r.affected_rows, r.insert_id, r.warning_count, r.message, r.server_status)
                n += 1
                if not cur.nextset():
                    break
        except pymysql.err.MySQLError as e:
            emit("py error", e.args)
    conn.close()


def run_prepared(conn):
    for sql, params in PREPARED:
        cur = conn.cursor(prepared=True)
        try:
            cur.execute(sql, params)
            if cur.description is not None:
                desc = [(d[0], d[1], d[6], d[7]) for d in cur.description]
                emit("ps rows", desc, [tuple(canon(v) for v in r) for r in cur.fetchall()], cur.warning_count)
            else:
                emit("ps ok", cur.rowcount, cur.lastrowid, cur.warning_count)
        except mysql.connector.Error as e:
            emit("ps error", e.errno, e.sqlstate, e.msg)
        cur.close()


def run_commands(conn):
    """COM_PING, COM_INIT_DB, COM_STATISTICS, COM_RESET_CONNECTION, SEND_LONG_DATA,
    STMT_RESET/CLOSE and a read-only cursor read with COM_STMT_FETCH."""
    emit("cmd ping", conn.cmd_ping())
    emit("cmd init_db", conn.cmd_init_db("shop"))
    emit("cmd statistics", sorted(conn.cmd_statistics()))
    cur = conn.cursor()
    cur.execute("SET @gone = 1")
    emit("cmd reset", conn.cmd_reset_connection())
    cur.execute("SELECT @gone")
    emit("cmd after reset", cur.fetchall())
    cur.close()
    stmt = conn.cmd_stmt_prepare(b"SELECT LENGTH(?), MD5(?)")
    sid = stmt.pop("statement_id")
    emit("cmd prepare", stmt)
    res = conn.cmd_stmt_execute(sid, data=(io.BytesIO(b"long\x00data" * 10000), b"x"), parameters=stmt["parameters"])
    conn.unread_result = True
    emit("cmd long data", res, conn.get_rows(binary=True, columns=res[1]))
    conn.cmd_stmt_reset(sid)
    conn.cmd_stmt_close(sid)
    stmt = conn.cmd_stmt_prepare(b"SELECT seq, CONCAT('r', seq) FROM seq_1_to_10")
    sid = stmt.pop("statement_id")
    res = conn.cmd_stmt_execute(sid, flags=1)  # CURSOR_TYPE_READ_ONLY
    emit("cmd cursor", res)
    for n in (3, 3, 10):
        conn.cmd_stmt_fetch(sid, n)
        emit("cmd fetch", conn.get_rows(binary=True, columns=res[1]))
    conn.cmd_stmt_close(sid)
    emit("cmd ping", conn.cmd_ping())


def run_bulk():
    """A 100k-row result read unbuffered: its count and digest."""
    conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password, database=database,
                           cursorclass=pymysql.cursors.SSCursor)
    cur = conn.cursor()
    cur.execute("SELECT seq, SHA2(seq, 256), seq % 7 = 0 FROM seq_1_to_100000")
    digest, rows = hashlib.sha256(), 0
    for row in cur:
        digest.update(repr(row).encode())
        rows += 1
    emit("bulk", rows, digest.hexdigest())
    conn.close()


def connect_and_setup():
    """A mysql-connector session with freshly created tables."""
    conn = mysql.connector.connect(host="127.0.0.1", port=port, user=user, password=password, database=database,
                                   use_pure=True, ssl_disabled=True, autocommit=True,
                                   auth_plugin="mysql_native_password")
    cur = conn.cursor()
    for sql in SETUP:
        cur.execute(sql)
    cur.close()
    return conn


def main():
    conn = connect_and_setup()
    run_connector_text(conn)
    run_prepared(conn)
    run_commands(conn)
    conn.close()
    # PyMySQL on a fresh table state: the same statements again.
    connect_and_setup().close()
    run_pymysql_text()
    run_bulk()
    print("statements", len(SETUP) + len(TEXT) + len(PREPARED))


main()
