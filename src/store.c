/*
 * The durable queue on SQLite: the schema and its migrations, and one
 * prepared statement per operation, all writes joining one transaction.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

/*
 * The schema writes the unfinished states as the literals 0 and 1: the
 * partial indexes are only used by queries that repeat their WHERE clause
 * with the same constants. Renumbering the states needs a migration.
 */
_Static_assert(MESSAGE_QUEUED == 0 && MESSAGE_SENDING == 1,
    "the schema knows queued as 0 and sending as 1");

/*
 * Migration i brings user_version i to i + 1; append, never edit. The body
 * is the last column so that reading the small columns never walks the
 * overflow pages of a long text. AUTOINCREMENT keeps an id from being
 * handed out again after the newest rows are pruned.
 */
static const char *const store_migrations[] = {
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" state INTEGER NOT NULL,"
	" priority INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt INTEGER NOT NULL DEFAULT 0,"
	" valid_until INTEGER NOT NULL,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL,"
	" segments INTEGER NOT NULL,"
	" encoding INTEGER NOT NULL,"
	" last_code INTEGER,"
	" recipient TEXT NOT NULL,"
	" sender TEXT NOT NULL,"
	" ref TEXT,"
	" upstream_id TEXT NOT NULL DEFAULT '',"
	" reason TEXT NOT NULL DEFAULT '',"
	" text BLOB NOT NULL);"
	"CREATE UNIQUE INDEX messages_ref ON messages (ref);"
	"CREATE INDEX messages_unfinished ON messages (priority DESC, id)"
	" WHERE state IN (0, 1);"
	"CREATE INDEX messages_finished ON messages (updated)"
	" WHERE state NOT IN (0, 1);",

	/* 2: delivery reports, and inbound messages. */
	"ALTER TABLE messages ADD COLUMN report_code INTEGER;"
	"ALTER TABLE messages ADD COLUMN report_at INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE inbox ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" received INTEGER NOT NULL,"
	" sender TEXT NOT NULL,"
	" recipient TEXT NOT NULL,"
	" charset TEXT NOT NULL,"
	" code TEXT NOT NULL,"
	" text BLOB NOT NULL);"
	"CREATE INDEX inbox_received ON inbox (received);",
};

#define STORE_VERSION \
	((int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

#define STORE_COLUMNS \
	"id, state, priority, attempts, next_attempt, valid_until, created," \
	" updated, segments, encoding, last_code, recipient, sender, ref," \
	" upstream_id, reason, text, report_code, report_at"

enum store_stmt {
	STORE_BEGIN,
	STORE_COMMIT,
	STORE_ROLLBACK,
	STORE_INSERT,
	STORE_GET,
	STORE_GET_REF,
	STORE_FIND_REF,
	STORE_UPDATE,
	STORE_REPORT,
	STORE_LOAD,
	STORE_COUNT,
	STORE_PRUNE,
	STORE_OLDEST,
	STORE_INBOX_INSERT,
	STORE_INBOX_LIST,
	STORE_INBOX_PRUNE,
	STORE_NSTMT
};

static const char *const store_sql[STORE_NSTMT] = {
	[STORE_BEGIN] = "BEGIN IMMEDIATE",
	[STORE_COMMIT] = "COMMIT",
	[STORE_ROLLBACK] = "ROLLBACK",
	[STORE_INSERT] = "INSERT INTO messages (state, priority, attempts,"
	    " next_attempt, valid_until, created, updated, segments, encoding,"
	    " last_code, recipient, sender, ref, upstream_id, reason, text)"
	    " VALUES (?, ?, 0, 0, ?, ?, ?, ?, ?, NULL, ?, ?, ?, '', '', ?)",
	[STORE_GET] = "SELECT " STORE_COLUMNS " FROM messages WHERE id = ?",
	[STORE_GET_REF] = "SELECT " STORE_COLUMNS
	    " FROM messages WHERE ref = ?",
	[STORE_FIND_REF] = "SELECT id FROM messages WHERE ref = ?",
	[STORE_UPDATE] = "UPDATE messages SET state = ?, attempts = ?,"
	    " next_attempt = ?, upstream_id = ?, last_code = ?, reason = ?,"
	    " updated = ? WHERE id = ?",
	[STORE_REPORT] = "UPDATE messages SET report_code = ?, report_at = ?"
	    " WHERE id = ?",
	[STORE_LOAD] = "SELECT id, state, priority, attempts, next_attempt,"
	    " valid_until FROM messages WHERE state IN (0, 1)"
	    " ORDER BY priority DESC, id",
	[STORE_COUNT] = "SELECT state, count(*) FROM messages GROUP BY state",
	[STORE_PRUNE] = "DELETE FROM messages WHERE id IN (SELECT id"
	    " FROM messages WHERE state NOT IN (0, 1) AND updated < ?"
	    " ORDER BY updated LIMIT ?)",
	[STORE_OLDEST] = "SELECT min(created) FROM (SELECT created FROM"
	    " (SELECT created FROM messages WHERE state IN (0, 1)"
	    " AND priority = 1 ORDER BY id LIMIT 1) UNION ALL"
	    " SELECT created FROM (SELECT created FROM messages"
	    " WHERE state IN (0, 1) AND priority = 0 ORDER BY id LIMIT 1))",
	[STORE_INBOX_INSERT] = "INSERT INTO inbox (received, sender,"
	    " recipient, charset, code, text) VALUES (?, ?, ?, ?, ?, ?)",
	[STORE_INBOX_LIST] = "SELECT id, received, sender, recipient, charset,"
	    " code, text FROM inbox WHERE id > ? ORDER BY id LIMIT ?",
	[STORE_INBOX_PRUNE] = "DELETE FROM inbox WHERE id IN (SELECT id"
	    " FROM inbox WHERE received < ? ORDER BY id LIMIT ?)",
};

struct store {
	sqlite3		*db;
	sqlite3_stmt	*stmt[STORE_NSTMT];
	int		 version;
	char		 error[256];
};

/* Keeps the reason for a failure before a later call can overwrite it. */
static void
store_fail(struct store *s, const char *why)
{
	if (why == NULL)
		why = sqlite3_errmsg(s->db);
	snprintf(s->error, sizeof(s->error), "%s", why);
}

/* Makes a statement ready for its next use, dropping borrowed pointers. */
static void
store_done(sqlite3_stmt *stmt)
{
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

/* Runs a statement that returns no rows, bound already. */
static int
store_run(struct store *s, enum store_stmt which)
{
	sqlite3_stmt *stmt = s->stmt[which];
	int rc;

	rc = sqlite3_step(stmt);
	if (rc != SQLITE_DONE)
		store_fail(s, NULL);
	store_done(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Steps a query to its next row: 1 a row, 0 no more, -1 failure. The
 * caller reads the row, then calls store_done.
 */
static int
store_step(struct store *s, sqlite3_stmt *stmt)
{
	int rc;

	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	store_fail(s, NULL);
	return -1;
}

static void
store_copy(sqlite3_stmt *stmt, int col, char *buf, size_t size)
{
	const unsigned char *v;
	size_t n;

	v = sqlite3_column_text(stmt, col);
	n = (size_t)sqlite3_column_bytes(stmt, col);
	if (v == NULL)
		n = 0;
	if (n >= size)
		n = size - 1;
	if (n > 0)
		memcpy(buf, v, n);
	buf[n] = '\0';
}

static int
store_bind_string(sqlite3_stmt *stmt, int col, const char *v, size_t size)
{
	return sqlite3_bind_text(stmt, col, v, (int)strnlen(v, size),
	    SQLITE_STATIC);
}

/* Reads PRAGMA user_version; -1 when the file cannot be read. */
static int
store_read_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt,
	    NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : -1;
}

static void
store_open_error(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	if (sqlite3_errcode(db) == SQLITE_NOTADB)
		snprintf(err, errlen, "%s: not an SQLite database", path);
	else
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
}

/* Creates the file owner-only; SQLite gives its WAL the same mode. */
static int
store_create_file(const char *path, char *err, size_t errlen)
{
	int fd;

	if (strcmp(path, ":memory:") == 0)
		return 0;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int
store_configure(struct store *s, const char *path, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	const char *mode;
	int ok;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &stmt,
	    NULL) != SQLITE_OK) {
		store_open_error(s->db, path, err, errlen);
		return -1;
	}
	ok = sqlite3_step(stmt) == SQLITE_ROW;
	mode = ok ? (const char *)sqlite3_column_text(stmt, 0) : NULL;
	ok = mode != NULL && (strcmp(mode, "wal") == 0 ||
	    strcmp(path, ":memory:") == 0);
	sqlite3_finalize(stmt);
	if (!ok) {
		snprintf(err, errlen, "%s: cannot switch to WAL mode", path);
		return -1;
	}

	if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL;"
	    "PRAGMA foreign_keys = OFF;"
	    "PRAGMA cache_size = -16384;"
	    "PRAGMA journal_size_limit = 67108864;",
	    NULL, NULL, NULL) != SQLITE_OK) {
		store_open_error(s->db, path, err, errlen);
		return -1;
	}
	sqlite3_wal_autocheckpoint(s->db, 1000);
	return 0;
}

/* Brings the schema to STORE_VERSION in one transaction. */
static int
store_migrate(struct store *s, const char *path, char *err, size_t errlen)
{
	char sql[64];
	int i;

	if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
	    SQLITE_OK)
		goto fail;

	/* Read again under the lock: another process may have migrated. */
	if (store_read_version(s->db, &s->version) == -1)
		goto fail;
	if (s->version > STORE_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this program knows (%d)", path, s->version,
		    STORE_VERSION);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}

	for (i = s->version; i < STORE_VERSION; i++) {
		if (sqlite3_exec(s->db, store_migrations[i], NULL, NULL,
		    NULL) != SQLITE_OK)
			goto fail;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_VERSION);
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;

	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	s->version = STORE_VERSION;
	return 0;

fail:
	store_open_error(s->db, path, err, errlen);
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
store_prepare(struct store *s, const char *path, char *err, size_t errlen)
{
	int i;

	for (i = 0; i < STORE_NSTMT; i++) {
		if (sqlite3_prepare_v3(s->db, store_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) !=
		    SQLITE_OK) {
			store_open_error(s->db, path, err, errlen);
			return -1;
		}
	}
	return 0;
}

struct store *
store_open(const char *path, char *err, size_t errlen)
{
	struct store *s;
	int version;

	if (store_create_file(path, err, errlen) == -1)
		return NULL;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		if (s->db == NULL)
			snprintf(err, errlen, "%s: out of memory", path);
		else
			store_open_error(s->db, path, err, errlen);
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);

	/* Refuse a foreign or newer file before changing anything in it. */
	if (store_read_version(s->db, &version) == -1) {
		store_open_error(s->db, path, err, errlen);
		goto fail;
	}
	if (version > STORE_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than "
		    "this program knows (%d)", path, version, STORE_VERSION);
		goto fail;
	}

	if (store_configure(s, path, err, errlen) == -1 ||
	    store_migrate(s, path, err, errlen) == -1 ||
	    store_prepare(s, path, err, errlen) == -1)
		goto fail;
	return s;

fail:
	store_close(s);
	return NULL;
}

void
store_close(struct store *s)
{
	int i;

	if (s == NULL)
		return;

	if (s->db != NULL)
		store_rollback(s);
	for (i = 0; i < STORE_NSTMT; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s);
}

const char *
store_error(struct store *s)
{
	if (s->error[0] != '\0')
		return s->error;
	return sqlite3_errmsg(s->db);
}

int
store_schema_version(struct store *s)
{
	return s->version;
}

int
store_begin(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		return 0;
	return store_run(s, STORE_BEGIN);
}

/*
 * On failure the transaction is rolled back, so that -1 always means that
 * none of its writes is durable and the caller must not acknowledge them.
 */
int
store_commit(struct store *s)
{
	return store_commit_sync(s, 1);
}

/*
 * The database runs with synchronous NORMAL: in WAL mode a commit reaches
 * the log without a sync, and survives the process being killed but not
 * a power cut. A commit that acknowledges something then syncs the log
 * itself, which is what synchronous FULL would do after every commit.
 */
static int
store_sync(struct store *s)
{
	sqlite3_file *wal = NULL;

	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
	    &wal) != SQLITE_OK || wal == NULL || wal->pMethods == NULL)
		return 0;
	if (wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) != SQLITE_OK) {
		store_fail(s, "cannot sync the write-ahead log");
		return -1;
	}
	return 0;
}

int
store_commit_sync(struct store *s, int sync)
{
	if (sqlite3_get_autocommit(s->db))
		return 0;
	if (store_run(s, STORE_COMMIT) == 0)
		return sync ? store_sync(s) : 0;

	if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_step(s->stmt[STORE_ROLLBACK]);
		store_done(s->stmt[STORE_ROLLBACK]);
	}
	return -1;
}

void
store_rollback(struct store *s)
{
	if (sqlite3_get_autocommit(s->db))
		return;
	store_run(s, STORE_ROLLBACK);
}

int
store_in_transaction(struct store *s)
{
	return !sqlite3_get_autocommit(s->db);
}

/* Also sets M's other fields to what the new row holds. */
int
store_insert(struct store *s, struct store_message *m)
{
	sqlite3_stmt *stmt = s->stmt[STORE_INSERT];
	const char *text = m->text != NULL ? m->text : "";
	size_t len = m->text != NULL ? m->text_len : 0;

	if (store_begin(s) == -1)
		return -1;

	sqlite3_bind_int(stmt, 1, MESSAGE_QUEUED);
	sqlite3_bind_int(stmt, 2, m->priority);
	sqlite3_bind_int64(stmt, 3, m->valid_until);
	sqlite3_bind_int64(stmt, 4, m->created);
	sqlite3_bind_int64(stmt, 5, m->created);
	sqlite3_bind_int(stmt, 6, m->segments);
	sqlite3_bind_int(stmt, 7, (int)m->encoding);
	store_bind_string(stmt, 8, m->to, sizeof(m->to));
	store_bind_string(stmt, 9, m->sender, sizeof(m->sender));
	if (m->ref[0] != '\0')
		store_bind_string(stmt, 10, m->ref, sizeof(m->ref));
	sqlite3_bind_blob64(stmt, 11, text, len, SQLITE_STATIC);
	if (store_run(s, STORE_INSERT) == -1)
		return -1;

	m->id = sqlite3_last_insert_rowid(s->db);
	m->state = MESSAGE_QUEUED;
	m->attempts = 0;
	m->next_attempt = 0;
	m->updated = m->created;
	m->upstream_id[0] = '\0';
	m->has_last_code = 0;
	m->last_code = 0;
	m->reason[0] = '\0';
	m->has_report = 0;
	m->report_code = 0;
	m->report_at = 0;
	return 0;
}

/* Fills M from the current row of a STORE_COLUMNS query. */
static int
store_row(struct store *s, sqlite3_stmt *stmt, struct store_message *m)
{
	const void *text;
	size_t len;

	memset(m, 0, sizeof(*m));
	m->id = sqlite3_column_int64(stmt, 0);
	m->state = (enum message_state)sqlite3_column_int(stmt, 1);
	m->priority = sqlite3_column_int(stmt, 2);
	m->attempts = sqlite3_column_int(stmt, 3);
	m->next_attempt = sqlite3_column_int64(stmt, 4);
	m->valid_until = sqlite3_column_int64(stmt, 5);
	m->created = sqlite3_column_int64(stmt, 6);
	m->updated = sqlite3_column_int64(stmt, 7);
	m->segments = sqlite3_column_int(stmt, 8);
	m->encoding = (enum message_encoding)sqlite3_column_int(stmt, 9);
	if (sqlite3_column_type(stmt, 10) != SQLITE_NULL) {
		m->has_last_code = 1;
		m->last_code = sqlite3_column_int(stmt, 10);
	}
	store_copy(stmt, 11, m->to, sizeof(m->to));
	store_copy(stmt, 12, m->sender, sizeof(m->sender));
	store_copy(stmt, 13, m->ref, sizeof(m->ref));
	store_copy(stmt, 14, m->upstream_id, sizeof(m->upstream_id));
	store_copy(stmt, 15, m->reason, sizeof(m->reason));

	text = sqlite3_column_blob(stmt, 16);
	len = (size_t)sqlite3_column_bytes(stmt, 16);
	if ((m->text = malloc(len + 1)) == NULL) {
		store_fail(s, "out of memory");
		return -1;
	}
	if (len > 0)
		memcpy(m->text, text, len);
	m->text[len] = '\0';
	m->text_len = len;
	if (sqlite3_column_type(stmt, 17) != SQLITE_NULL) {
		m->has_report = 1;
		m->report_code = sqlite3_column_int(stmt, 17);
	}
	m->report_at = sqlite3_column_int64(stmt, 18);
	return 0;
}

/* Steps a query bound to find one message: 1 found, 0 not, -1 failure. */
static int
store_fetch(struct store *s, sqlite3_stmt *stmt, struct store_message *m)
{
	int found;

	if ((found = store_step(s, stmt)) == 1 && store_row(s, stmt, m) == -1)
		found = -1;
	store_done(stmt);
	return found;
}

int
store_get(struct store *s, int64_t id, struct store_message *m)
{
	sqlite3_stmt *stmt = s->stmt[STORE_GET];

	sqlite3_bind_int64(stmt, 1, id);
	return store_fetch(s, stmt, m);
}

int
store_get_ref(struct store *s, const char *ref, struct store_message *m)
{
	sqlite3_stmt *stmt = s->stmt[STORE_GET_REF];

	if (ref[0] == '\0')
		return 0;
	sqlite3_bind_text(stmt, 1, ref, -1, SQLITE_STATIC);
	return store_fetch(s, stmt, m);
}

int
store_find_ref(struct store *s, const char *ref, int64_t *id)
{
	sqlite3_stmt *stmt = s->stmt[STORE_FIND_REF];
	int found;

	if (ref[0] == '\0')
		return 0;

	sqlite3_bind_text(stmt, 1, ref, -1, SQLITE_STATIC);
	if ((found = store_step(s, stmt)) == 1)
		*id = sqlite3_column_int64(stmt, 0);
	store_done(stmt);
	return found;
}

void
store_clear(struct store_message *m)
{
	free(m->text);
	m->text = NULL;
	m->text_len = 0;
}

/* A message that is not there is a failure too: its caller has a bug. */
int
store_update(struct store *s, const struct store_message *m)
{
	sqlite3_stmt *stmt = s->stmt[STORE_UPDATE];

	if (store_begin(s) == -1)
		return -1;

	sqlite3_bind_int(stmt, 1, (int)m->state);
	sqlite3_bind_int(stmt, 2, m->attempts);
	sqlite3_bind_int64(stmt, 3, m->next_attempt);
	store_bind_string(stmt, 4, m->upstream_id, sizeof(m->upstream_id));
	if (m->has_last_code)
		sqlite3_bind_int(stmt, 5, m->last_code);
	store_bind_string(stmt, 6, m->reason, sizeof(m->reason));
	sqlite3_bind_int64(stmt, 7, m->updated);
	sqlite3_bind_int64(stmt, 8, m->id);
	if (store_run(s, STORE_UPDATE) == -1)
		return -1;

	if (sqlite3_changes(s->db) == 0) {
		store_fail(s, "no such message");
		return -1;
	}
	return 0;
}

/*
 * The oldest unfinished message of each priority is the first of its
 * priority in the loading index, so this reads two rows, not the table.
 */
int
store_oldest(struct store *s, int64_t *created)
{
	sqlite3_stmt *stmt = s->stmt[STORE_OLDEST];
	int found;

	/* min() of no rows is one row holding NULL. */
	if ((found = store_step(s, stmt)) == 1) {
		if (sqlite3_column_type(stmt, 0) == SQLITE_NULL)
			found = 0;
		else
			*created = sqlite3_column_int64(stmt, 0);
	}
	store_done(stmt);
	return found;
}

int
store_report(struct store *s, int64_t id, int code, int64_t at)
{
	sqlite3_stmt *stmt = s->stmt[STORE_REPORT];

	if (store_begin(s) == -1)
		return -1;

	sqlite3_bind_int(stmt, 1, code);
	sqlite3_bind_int64(stmt, 2, at);
	sqlite3_bind_int64(stmt, 3, id);
	return store_run(s, STORE_REPORT);
}

int
store_load(struct store *s,
    int (*cb)(void *arg, const struct store_pending *p), void *arg)
{
	sqlite3_stmt *stmt = s->stmt[STORE_LOAD];
	struct store_pending p;
	int rc, ret = 0;

	while ((rc = store_step(s, stmt)) == 1) {
		p.id = sqlite3_column_int64(stmt, 0);
		p.state = (enum message_state)sqlite3_column_int(stmt, 1);
		p.priority = sqlite3_column_int(stmt, 2);
		p.attempts = sqlite3_column_int(stmt, 3);
		p.next_attempt = sqlite3_column_int64(stmt, 4);
		p.valid_until = sqlite3_column_int64(stmt, 5);
		if (cb(arg, &p) != 0) {
			ret = -1;
			break;
		}
	}
	if (rc == -1)
		ret = -1;
	store_done(stmt);
	return ret;
}

int
store_count(struct store *s, int64_t *counts)
{
	sqlite3_stmt *stmt = s->stmt[STORE_COUNT];
	int rc, state;

	memset(counts, 0, MESSAGE_STATE_MAX * sizeof(*counts));
	while ((rc = store_step(s, stmt)) == 1) {
		state = sqlite3_column_int(stmt, 0);
		if (state >= 0 && state < MESSAGE_STATE_MAX)
			counts[state] = sqlite3_column_int64(stmt, 1);
	}
	store_done(stmt);
	return rc;
}

/* Runs a DELETE bound to (before, limit): how many rows went, or -1. */
static int
store_delete(struct store *s, enum store_stmt which, int64_t before,
    int limit)
{
	sqlite3_stmt *stmt = s->stmt[which];

	if (store_begin(s) == -1)
		return -1;

	sqlite3_bind_int64(stmt, 1, before);
	sqlite3_bind_int(stmt, 2, limit);
	if (store_run(s, which) == -1)
		return -1;
	return sqlite3_changes(s->db);
}

int
store_prune(struct store *s, int64_t before, int limit)
{
	if (limit <= 0)
		return 0;
	return store_delete(s, STORE_PRUNE, before, limit);
}

int64_t
store_inbox_insert(struct store *s, const struct store_inbound *in)
{
	sqlite3_stmt *stmt = s->stmt[STORE_INBOX_INSERT];

	if (store_begin(s) == -1)
		return -1;

	sqlite3_bind_int64(stmt, 1, in->received);
	sqlite3_bind_text(stmt, 2, in->from, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, in->to, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, in->charset, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, in->code, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(stmt, 6, in->text, in->text_len, SQLITE_STATIC);
	if (store_run(s, STORE_INBOX_INSERT) == -1)
		return -1;
	return sqlite3_last_insert_rowid(s->db);
}

int
store_inbox_list(struct store *s, int64_t after, int limit,
    int (*cb)(void *arg, const struct store_inbound *in), void *arg)
{
	sqlite3_stmt *stmt = s->stmt[STORE_INBOX_LIST];
	struct store_inbound in;
	int rc, n = 0;

	sqlite3_bind_int64(stmt, 1, after);
	sqlite3_bind_int(stmt, 2, limit);
	while ((rc = store_step(s, stmt)) == 1) {
		in.id = sqlite3_column_int64(stmt, 0);
		in.received = sqlite3_column_int64(stmt, 1);
		in.from = (const char *)sqlite3_column_text(stmt, 2);
		in.to = (const char *)sqlite3_column_text(stmt, 3);
		in.charset = (const char *)sqlite3_column_text(stmt, 4);
		in.code = (const char *)sqlite3_column_text(stmt, 5);
		in.text = sqlite3_column_blob(stmt, 6);
		in.text_len = (size_t)sqlite3_column_bytes(stmt, 6);
		if (in.text == NULL)
			in.text = "";
		n++;
		if (cb(arg, &in) != 0)
			break;
	}
	if (rc == -1)
		n = -1;
	store_done(stmt);
	return n;
}

int
store_inbox_prune(struct store *s, int64_t before, int limit)
{
	return store_delete(s, STORE_INBOX_PRUNE, before, limit);
}
