/* Tests for the SQLite store: schema, durability, lookups, load, prune. */
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <sqlite3.h>

#include "store.h"
#include "util.h"

static char tmpdir[64];
static char dbpath[128];

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/smsgw.db", tmpdir);
}

static void
teardown(void)
{
	struct dirent *de;
	char path[512];
	DIR *dir;

	if ((dir = opendir(tmpdir)) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(dir);
	rmdir(tmpdir);
}

static struct store *
open_store(void)
{
	struct store *s;
	char err[256];

	s = store_open(dbpath, err, sizeof(err));
	ck_assert_msg(s != NULL, "store_open: %s", err);
	return s;
}

/* Runs a one-value query on the file through a connection of its own. */
static int64_t
raw_int(const char *sql)
{
	sqlite3_stmt *stmt;
	sqlite3 *db;
	int64_t v;

	ck_assert_int_eq(sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(stmt), SQLITE_ROW);
	v = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_close(db);
	return v;
}

static void
raw_exec(const char *sql)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static void
msg_init(struct store_message *m, const char *ref, int priority)
{
	static char text[] = "hello";

	memset(m, 0, sizeof(*m));
	snprintf(m->to, sizeof(m->to), "+27821234567");
	snprintf(m->ref, sizeof(m->ref), "%s", ref);
	m->priority = priority;
	m->text = text;
	m->text_len = strlen(text);
	m->segments = 1;
	m->encoding = MESSAGE_GSM7;
	m->created = 1000;
	m->valid_until = 2000;
}

static int64_t
insert(struct store *s, const char *ref, int priority)
{
	struct store_message m;

	msg_init(&m, ref, priority);
	ck_assert_int_eq(store_insert(s, &m), 0);
	return m.id;
}

static void
set_state(struct store *s, int64_t id, enum message_state state,
    int64_t updated)
{
	struct store_message m;

	ck_assert_int_eq(store_get(s, id, &m), 1);
	m.state = state;
	m.updated = updated;
	ck_assert_int_eq(store_update(s, &m), 0);
	store_clear(&m);
}

static void
write_file(const char *data, size_t len)
{
	int fd;

	fd = open(dbpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

START_TEST(test_migration_from_empty_file_sets_latest_version)
{
	struct store *s;

	s = open_store();
	ck_assert_int_eq(store_schema_version(s), 2);
	store_close(s);

	ck_assert_int_eq(raw_int("PRAGMA user_version"), 2);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE"
	    " type = 'table' AND name = 'messages'"), 1);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE"
	    " type = 'index' AND name IN ('messages_ref',"
	    " 'messages_unfinished', 'messages_finished')"), 3);
}
END_TEST

START_TEST(test_zero_byte_file_is_migrated)
{
	struct store *s;

	write_file("", 0);
	s = open_store();
	ck_assert_int_eq(store_schema_version(s), 2);
	store_close(s);
	ck_assert_int_eq(raw_int("PRAGMA user_version"), 2);
}
END_TEST

START_TEST(test_new_file_is_owner_only_and_in_wal_mode)
{
	struct store *s;
	char wal[160];
	struct stat st;

	s = open_store();
	insert(s, "", 0);
	ck_assert_int_eq(store_commit(s), 0);

	ck_assert_int_eq(stat(dbpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	ck_assert_int_eq(stat(wal, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	store_close(s);

	ck_assert_int_eq(raw_int("SELECT journal_mode = 'wal'"
	    " FROM pragma_journal_mode"), 1);
}
END_TEST

START_TEST(test_reopen_keeps_messages)
{
	struct store_message m;
	struct store *s;
	int64_t id;

	s = open_store();
	id = insert(s, "keep", 0);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_schema_version(s), 2);
	ck_assert_int_eq(store_get(s, id, &m), 1);
	ck_assert_str_eq(m.ref, "keep");
	store_clear(&m);
	store_close(s);
}
END_TEST

START_TEST(test_newer_user_version_is_refused)
{
	struct store *s;
	char err[256];

	raw_exec("CREATE TABLE t (x); PRAGMA user_version = 99;");
	s = store_open(dbpath, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err, "newer") != NULL, "err: %s", err);
	ck_assert_msg(strstr(err, "99") != NULL, "err: %s", err);

	/* The file must be left as it was. */
	ck_assert_int_eq(raw_int("PRAGMA user_version"), 99);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_schema WHERE"
	    " name = 'messages'"), 0);
	ck_assert_int_eq(raw_int("SELECT journal_mode = 'delete'"
	    " FROM pragma_journal_mode"), 1);
}
END_TEST

START_TEST(test_non_database_file_is_refused)
{
	static const char junk[] = "this is a configuration file, not a "
	    "database, and it is long enough to hold a header\n";
	char err[256], back[sizeof(junk)];
	struct store *s;
	ssize_t n;
	int fd;

	write_file(junk, sizeof(junk) - 1);
	s = store_open(dbpath, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err, "not an SQLite database") != NULL,
	    "err: %s", err);
	ck_assert_msg(strstr(err, dbpath) != NULL, "err: %s", err);

	fd = open(dbpath, O_RDONLY);
	ck_assert_int_ne(fd, -1);
	n = read(fd, back, sizeof(back));
	close(fd);
	ck_assert_int_eq(n, (ssize_t)sizeof(junk) - 1);
	ck_assert_int_eq(memcmp(back, junk, sizeof(junk) - 1), 0);
}
END_TEST

START_TEST(test_missing_directory_is_refused)
{
	struct store *s;
	char err[256], path[192];

	snprintf(path, sizeof(path), "%s/none/smsgw.db", tmpdir);
	s = store_open(path, err, sizeof(err));
	ck_assert_ptr_null(s);
	ck_assert_msg(strstr(err, path) != NULL, "err: %s", err);
}
END_TEST

START_TEST(test_insert_commit_get_returns_every_field)
{
	/* An embedded NUL, then "héllo €" and an emoji in UTF-8. */
	static char text[] = "a\0b h\xc3\xa9llo \xe2\x82\xac "
	    "\xf0\x9f\x98\x80";
	struct store_message m, got;
	struct store *s;

	s = open_store();
	memset(&m, 0, sizeof(m));
	snprintf(m.to, sizeof(m.to), "+27821234567");
	snprintf(m.sender, sizeof(m.sender), "Acme");
	snprintf(m.ref, sizeof(m.ref), "order-9931");
	m.text = text;
	m.text_len = sizeof(text) - 1;
	m.segments = 2;
	m.encoding = MESSAGE_UCS2;
	m.priority = 1;
	m.created = 1764756000123;
	m.valid_until = 1764842400123;
	m.state = MESSAGE_FAILED;
	m.attempts = 9;
	ck_assert_int_eq(store_insert(s, &m), 0);
	ck_assert_int_gt(m.id, 0);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_in_transaction(s), 0);

	ck_assert_int_eq(store_get(s, m.id, &got), 1);
	ck_assert_int_eq(got.id, m.id);
	ck_assert_int_eq(got.state, MESSAGE_QUEUED);
	ck_assert_int_eq(got.priority, 1);
	ck_assert_str_eq(got.to, "+27821234567");
	ck_assert_str_eq(got.sender, "Acme");
	ck_assert_str_eq(got.ref, "order-9931");
	ck_assert_uint_eq(got.text_len, sizeof(text) - 1);
	ck_assert_int_eq(memcmp(got.text, text, sizeof(text)), 0);
	ck_assert_int_eq(got.segments, 2);
	ck_assert_int_eq(got.encoding, MESSAGE_UCS2);
	ck_assert_int_eq(got.created, 1764756000123);
	ck_assert_int_eq(got.updated, 1764756000123);
	ck_assert_int_eq(got.valid_until, 1764842400123);
	ck_assert_int_eq(got.attempts, 0);
	ck_assert_int_eq(got.next_attempt, 0);
	ck_assert_str_eq(got.upstream_id, "");
	ck_assert_int_eq(got.has_last_code, 0);
	ck_assert_str_eq(got.reason, "");
	store_clear(&got);
	ck_assert_ptr_null(got.text);

	ck_assert_int_eq(store_get(s, m.id + 1, &got), 0);
	store_close(s);
}
END_TEST

START_TEST(test_empty_text_and_default_sender_round_trip)
{
	struct store_message m, got;
	struct store *s;

	s = open_store();
	msg_init(&m, "", 0);
	m.text = NULL;
	m.text_len = 0;
	ck_assert_int_eq(store_insert(s, &m), 0);
	ck_assert_int_eq(store_get(s, m.id, &got), 1);
	ck_assert_ptr_nonnull(got.text);
	ck_assert_uint_eq(got.text_len, 0);
	ck_assert_str_eq(got.text, "");
	ck_assert_str_eq(got.sender, "");
	ck_assert_str_eq(got.ref, "");
	store_clear(&got);
	store_close(s);
}
END_TEST

START_TEST(test_writes_open_a_transaction_and_commit_ends_it)
{
	struct store *s;

	s = open_store();
	ck_assert_int_eq(store_in_transaction(s), 0);
	ck_assert_int_eq(store_commit(s), 0);
	store_rollback(s);

	insert(s, "", 0);
	ck_assert_int_eq(store_in_transaction(s), 1);
	ck_assert_int_eq(store_begin(s), 0);
	insert(s, "", 0);
	ck_assert_int_eq(store_in_transaction(s), 1);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_in_transaction(s), 0);
	store_close(s);

	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages"), 2);
}
END_TEST

START_TEST(test_rollback_discards_uncommitted_inserts)
{
	struct store_message m;
	struct store *s;
	int64_t kept, lost;

	s = open_store();
	kept = insert(s, "kept", 0);
	ck_assert_int_eq(store_commit(s), 0);
	lost = insert(s, "lost", 0);
	store_rollback(s);
	ck_assert_int_eq(store_in_transaction(s), 0);

	ck_assert_int_eq(store_get(s, lost, &m), 0);
	ck_assert_int_eq(store_find_ref(s, "lost", &lost), 0);
	ck_assert_int_eq(store_get(s, kept, &m), 1);
	store_clear(&m);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_get(s, lost, &m), 0);
	store_close(s);
}
END_TEST

START_TEST(test_close_without_commit_discards_inserts)
{
	struct store *s;
	int64_t counts[MESSAGE_STATE_MAX];

	s = open_store();
	insert(s, "a", 0);
	insert(s, "b", 1);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_count(s, counts), 0);
	ck_assert_int_eq(counts[MESSAGE_QUEUED], 0);
	store_close(s);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages"), 0);
}
END_TEST

START_TEST(test_ref_lookup_finds_message_and_empty_refs_do_not_collide)
{
	struct store_message m;
	struct store *s;
	int64_t a, b, c, id;

	s = open_store();
	a = insert(s, "", 0);
	b = insert(s, "", 0);
	c = insert(s, "order-1", 0);
	ck_assert_int_ne(a, b);
	ck_assert_int_eq(store_commit(s), 0);

	ck_assert_int_eq(store_find_ref(s, "order-1", &id), 1);
	ck_assert_int_eq(id, c);
	ck_assert_int_eq(store_get_ref(s, "order-1", &m), 1);
	ck_assert_int_eq(m.id, c);
	ck_assert_str_eq(m.text, "hello");
	store_clear(&m);

	ck_assert_int_eq(store_find_ref(s, "order-2", &id), 0);
	ck_assert_int_eq(store_get_ref(s, "order-2", &m), 0);
	ck_assert_int_eq(store_find_ref(s, "", &id), 0);
	ck_assert_int_eq(store_get_ref(s, "", &m), 0);
	ck_assert_int_eq(raw_int("SELECT count(*) FROM messages"
	    " WHERE ref IS NULL"), 2);
	store_close(s);
}
END_TEST

START_TEST(test_duplicate_ref_insert_fails_and_keeps_the_batch)
{
	struct store_message m;
	struct store *s;
	int64_t first, other;

	s = open_store();
	first = insert(s, "dup", 0);
	msg_init(&m, "dup", 1);
	ck_assert_int_eq(store_insert(s, &m), -1);
	ck_assert_msg(strstr(store_error(s), "UNIQUE") != NULL, "error: %s",
	    store_error(s));
	other = insert(s, "other", 0);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_get(s, first, &m), 1);
	ck_assert_int_eq(m.priority, 0);
	store_clear(&m);
	ck_assert_int_eq(store_get(s, other, &m), 1);
	store_clear(&m);
	ck_assert_int_eq(store_insert(s, &m), -1);
	store_close(s);
}
END_TEST

START_TEST(test_update_changes_state_and_fields)
{
	struct store_message m, got;
	struct store *s;

	s = open_store();
	msg_init(&m, "u", 0);
	ck_assert_int_eq(store_insert(s, &m), 0);
	ck_assert_int_eq(store_commit(s), 0);

	m.state = MESSAGE_SENT;
	m.attempts = 3;
	m.next_attempt = 5555;
	snprintf(m.upstream_id, sizeof(m.upstream_id),
	    "8beda1a8-0000-4000-8000-000000000001");
	m.has_last_code = 1;
	m.last_code = -16;
	snprintf(m.reason, sizeof(m.reason), "internal-error");
	m.updated = 7777;
	ck_assert_int_eq(store_update(s, &m), 0);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_get(s, m.id, &got), 1);
	ck_assert_int_eq(got.state, MESSAGE_SENT);
	ck_assert_int_eq(got.attempts, 3);
	ck_assert_int_eq(got.next_attempt, 5555);
	ck_assert_str_eq(got.upstream_id,
	    "8beda1a8-0000-4000-8000-000000000001");
	ck_assert_int_eq(got.has_last_code, 1);
	ck_assert_int_eq(got.last_code, -16);
	ck_assert_str_eq(got.reason, "internal-error");
	ck_assert_int_eq(got.updated, 7777);
	ck_assert_int_eq(got.created, 1000);
	ck_assert_str_eq(got.text, "hello");

	/* A code of 0 is a code; none is NULL. */
	got.last_code = 0;
	ck_assert_int_eq(store_update(s, &got), 0);
	store_clear(&got);
	ck_assert_int_eq(store_get(s, m.id, &got), 1);
	ck_assert_int_eq(got.has_last_code, 1);
	ck_assert_int_eq(got.last_code, 0);
	got.has_last_code = 0;
	ck_assert_int_eq(store_update(s, &got), 0);
	store_clear(&got);
	ck_assert_int_eq(store_get(s, m.id, &got), 1);
	ck_assert_int_eq(got.has_last_code, 0);
	store_clear(&got);
	store_close(s);
}
END_TEST

START_TEST(test_update_of_missing_message_fails)
{
	struct store_message m;
	struct store *s;

	s = open_store();
	msg_init(&m, "", 0);
	m.id = 42;
	ck_assert_int_eq(store_update(s, &m), -1);
	ck_assert_str_eq(store_error(s), "no such message");
	store_close(s);
}
END_TEST

struct seen {
	struct store		*store;
	struct store_pending	 p[16];
	int			 n;
	int			 fail_after;
	int			 fail_sending;
};

static int
collect(void *arg, const struct store_pending *p)
{
	struct seen *seen = arg;
	struct store_message m;

	ck_assert_int_lt(seen->n, 16);
	seen->p[seen->n++] = *p;
	if (seen->fail_sending && p->state == MESSAGE_SENDING) {
		/* What the daemon does with ambiguous messages at start-up. */
		ck_assert_int_eq(store_get(seen->store, p->id, &m), 1);
		m.state = MESSAGE_FAILED;
		snprintf(m.reason, sizeof(m.reason), "ambiguous");
		ck_assert_int_eq(store_update(seen->store, &m), 0);
		store_clear(&m);
	}
	if (seen->fail_after > 0 && seen->n == seen->fail_after)
		return -1;
	return 0;
}

START_TEST(test_load_returns_unfinished_in_priority_then_id_order)
{
	struct store_message m;
	struct seen seen;
	struct store *s;
	int64_t id[7];
	int i;

	s = open_store();
	id[0] = insert(s, "", 0);
	id[1] = insert(s, "", 1);
	id[2] = insert(s, "", 0);
	id[3] = insert(s, "", 1);
	id[4] = insert(s, "", 0);
	id[5] = insert(s, "", 1);
	id[6] = insert(s, "", 0);
	set_state(s, id[2], MESSAGE_SENT, 1);
	set_state(s, id[5], MESSAGE_FAILED, 1);
	set_state(s, id[6], MESSAGE_DELIVERED, 1);
	ck_assert_int_eq(store_get(s, id[4], &m), 1);
	m.state = MESSAGE_SENDING;
	m.attempts = 2;
	m.next_attempt = 4242;
	ck_assert_int_eq(store_update(s, &m), 0);
	store_clear(&m);
	ck_assert_int_eq(store_commit(s), 0);

	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(store_load(s, collect, &seen), 0);
	ck_assert_int_eq(seen.n, 4);
	ck_assert_int_eq(seen.p[0].id, id[1]);
	ck_assert_int_eq(seen.p[1].id, id[3]);
	ck_assert_int_eq(seen.p[2].id, id[0]);
	ck_assert_int_eq(seen.p[3].id, id[4]);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(seen.p[i].priority, 1);
		ck_assert_int_eq(seen.p[i].state, MESSAGE_QUEUED);
	}
	ck_assert_int_eq(seen.p[2].priority, 0);
	ck_assert_int_eq(seen.p[2].valid_until, 2000);
	ck_assert_int_eq(seen.p[3].state, MESSAGE_SENDING);
	ck_assert_int_eq(seen.p[3].attempts, 2);
	ck_assert_int_eq(seen.p[3].next_attempt, 4242);
	store_close(s);
}
END_TEST

START_TEST(test_load_stops_when_callback_fails_and_can_run_again)
{
	struct seen seen;
	struct store *s;
	int i;

	s = open_store();
	for (i = 0; i < 5; i++)
		insert(s, "", 0);
	ck_assert_int_eq(store_commit(s), 0);

	memset(&seen, 0, sizeof(seen));
	seen.fail_after = 2;
	ck_assert_int_eq(store_load(s, collect, &seen), -1);
	ck_assert_int_eq(seen.n, 2);

	memset(&seen, 0, sizeof(seen));
	ck_assert_int_eq(store_load(s, collect, &seen), 0);
	ck_assert_int_eq(seen.n, 5);
	store_close(s);
}
END_TEST

START_TEST(test_load_lets_callback_update_the_message_it_is_given)
{
	int64_t counts[MESSAGE_STATE_MAX];
	struct store_message m;
	struct seen seen;
	struct store *s;
	int64_t id[6];
	int i;

	s = open_store();
	for (i = 0; i < 6; i++) {
		id[i] = insert(s, "", i % 2);
		if (i % 3 == 0) {
			ck_assert_int_eq(store_get(s, id[i], &m), 1);
			m.state = MESSAGE_SENDING;
			ck_assert_int_eq(store_update(s, &m), 0);
			store_clear(&m);
		}
	}
	ck_assert_int_eq(store_commit(s), 0);

	memset(&seen, 0, sizeof(seen));
	seen.store = s;
	seen.fail_sending = 1;
	ck_assert_int_eq(store_load(s, collect, &seen), 0);
	ck_assert_int_eq(seen.n, 6);
	for (i = 1; i < seen.n; i++)
		ck_assert_int_ne(seen.p[i].id, seen.p[i - 1].id);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);

	s = open_store();
	ck_assert_int_eq(store_count(s, counts), 0);
	ck_assert_int_eq(counts[MESSAGE_FAILED], 2);
	ck_assert_int_eq(counts[MESSAGE_QUEUED], 4);
	ck_assert_int_eq(counts[MESSAGE_SENDING], 0);
	store_close(s);
}
END_TEST

START_TEST(test_count_per_state)
{
	int64_t counts[MESSAGE_STATE_MAX];
	struct store *s;
	int64_t id;
	int i;

	s = open_store();
	ck_assert_int_eq(store_count(s, counts), 0);
	for (i = 0; i < MESSAGE_STATE_MAX; i++)
		ck_assert_int_eq(counts[i], 0);

	for (i = 0; i < 5; i++)
		insert(s, "", 0);
	for (i = 0; i < 3; i++) {
		id = insert(s, "", 0);
		set_state(s, id, MESSAGE_DELIVERED, 1);
	}
	id = insert(s, "", 0);
	set_state(s, id, MESSAGE_EXPIRED, 1);
	ck_assert_int_eq(store_commit(s), 0);

	ck_assert_int_eq(store_count(s, counts), 0);
	for (i = 0; i < MESSAGE_STATE_MAX; i++) {
		if (i == MESSAGE_QUEUED)
			ck_assert_int_eq(counts[i], 5);
		else if (i == MESSAGE_DELIVERED)
			ck_assert_int_eq(counts[i], 3);
		else if (i == MESSAGE_EXPIRED)
			ck_assert_int_eq(counts[i], 1);
		else
			ck_assert_int_eq(counts[i], 0);
	}
	store_close(s);
}
END_TEST

START_TEST(test_prune_deletes_only_finished_old_rows_at_most_limit)
{
	int64_t old[5], young, queued, sending, id;
	struct store_message m;
	struct store *s;
	int i;

	s = open_store();
	for (i = 0; i < 5; i++) {
		old[i] = insert(s, i == 4 ? "reuse" : "", 0);
		set_state(s, old[i], i % 2 ? MESSAGE_FAILED : MESSAGE_SENT,
		    104 - i);
	}
	young = insert(s, "", 0);
	set_state(s, young, MESSAGE_DELIVERED, 500);
	queued = insert(s, "", 0);
	set_state(s, queued, MESSAGE_QUEUED, 1);
	sending = insert(s, "", 0);
	set_state(s, sending, MESSAGE_SENDING, 1);
	ck_assert_int_eq(store_commit(s), 0);

	ck_assert_int_eq(store_prune(s, 500, 2), 2);
	ck_assert_int_eq(store_in_transaction(s), 1);
	ck_assert_int_eq(store_commit(s), 0);
	/* The least recently updated go first. */
	ck_assert_int_eq(store_get(s, old[4], &m), 0);
	ck_assert_int_eq(store_get(s, old[3], &m), 0);
	ck_assert_int_eq(store_get(s, old[2], &m), 1);
	store_clear(&m);

	ck_assert_int_eq(store_prune(s, 500, 100), 3);
	ck_assert_int_eq(store_prune(s, 500, 100), 0);
	ck_assert_int_eq(store_prune(s, 501, 0), 0);
	ck_assert_int_eq(store_commit(s), 0);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(store_get(s, old[i], &m), 0);
	ck_assert_int_eq(store_get(s, young, &m), 1);
	store_clear(&m);
	ck_assert_int_eq(store_get(s, queued, &m), 1);
	store_clear(&m);
	ck_assert_int_eq(store_get(s, sending, &m), 1);
	store_clear(&m);

	ck_assert_int_eq(store_find_ref(s, "reuse", &id), 0);
	id = insert(s, "reuse", 0);
	ck_assert_int_gt(id, sending);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);
}
END_TEST

START_TEST(test_ids_never_reused_after_pruning_the_newest)
{
	struct store *s;
	int64_t a, b, c;

	s = open_store();
	a = insert(s, "", 0);
	b = insert(s, "", 0);
	set_state(s, b, MESSAGE_SENT, 1);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_prune(s, 2, 10), 1);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);

	s = open_store();
	c = insert(s, "", 0);
	ck_assert_int_gt(b, a);
	ck_assert_int_gt(c, b);
	ck_assert_int_eq(store_commit(s), 0);
	store_close(s);
}
END_TEST

static int
count_rows(void *arg, const struct store_pending *p)
{
	int64_t *n = arg;

	(void)p;
	(*n)++;
	return 0;
}

START_TEST(test_bulk_insert_and_load_are_fast)
{
	struct store_message m;
	const char *env;
	int64_t t0, t1, t2, n = 0;
	struct store *s;
	long rows, i;

	env = getenv("STORE_BENCH_ROWS");
	rows = env != NULL ? strtol(env, NULL, 10) : 100000;
	s = open_store();

	t0 = util_mono_ms();
	for (i = 0; i < rows; i++) {
		msg_init(&m, "", (int)(i % 7 == 0));
		if (i % 3 == 0)
			snprintf(m.ref, sizeof(m.ref), "bulk-%ld", i);
		ck_assert_int_eq(store_insert(s, &m), 0);
	}
	ck_assert_int_eq(store_commit(s), 0);
	t1 = util_mono_ms();
	ck_assert_int_eq(store_load(s, count_rows, &n), 0);
	t2 = util_mono_ms();
	ck_assert_int_eq(n, rows);

	printf("check_store: %ld inserts in one transaction %lld ms, "
	    "load %lld ms\n", rows, (long long)(t1 - t0),
	    (long long)(t2 - t1));
	ck_assert_int_lt(t1 - t0, 30000);
	ck_assert_int_lt(t2 - t1, 30000);
	store_close(s);
}
END_TEST

/* The first schema exactly as version 1 of the store created it. */
static const char schema_v1[] =
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, state INTEGER NOT NULL,"
	" priority INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt INTEGER NOT NULL DEFAULT 0,"
	" valid_until INTEGER NOT NULL, created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL, segments INTEGER NOT NULL,"
	" encoding INTEGER NOT NULL, last_code INTEGER,"
	" recipient TEXT NOT NULL, sender TEXT NOT NULL, ref TEXT,"
	" upstream_id TEXT NOT NULL DEFAULT '',"
	" reason TEXT NOT NULL DEFAULT '', text BLOB NOT NULL);"
	"INSERT INTO messages (state, priority, valid_until, created, updated,"
	" segments, encoding, recipient, sender, ref, text) VALUES"
	" (0, 1, 9000, 1000, 1000, 1, 0, '+27821234567', '', 'old', 'hi');"
	"PRAGMA user_version = 1;";

START_TEST(test_version_1_file_migrates_and_keeps_its_messages)
{
	struct store_message m;
	struct store *s;
	int64_t id;

	raw_exec(schema_v1);
	s = open_store();
	ck_assert_int_eq(store_schema_version(s), 2);
	ck_assert_int_eq(store_find_ref(s, "old", &id), 1);
	ck_assert_int_eq(store_get(s, id, &m), 1);
	ck_assert_str_eq(m.text, "hi");
	ck_assert_int_eq(m.has_report, 0);
	store_clear(&m);
	store_close(s);
}
END_TEST

START_TEST(test_report_fields_round_trip)
{
	struct store_message m;
	struct store *s = open_store();
	int64_t id = insert(s, "r", 0);

	ck_assert_int_eq(store_report(s, id, 8, 123456789), 0);
	/* A later update from an older copy leaves the report alone. */
	ck_assert_int_eq(store_get(s, id, &m), 1);
	m.has_report = 0;
	m.state = MESSAGE_SENT;
	ck_assert_int_eq(store_update(s, &m), 0);
	store_clear(&m);
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_get(s, id, &m), 1);
	ck_assert_int_eq(m.has_report, 1);
	ck_assert_int_eq(m.report_code, 8);
	ck_assert_int_eq(m.report_at, 123456789);
	store_clear(&m);
	store_close(s);
}
END_TEST

static int
inbox_collect(void *arg, const struct store_inbound *in)
{
	int64_t *ids = arg;

	ids[0]++;
	ids[ids[0]] = in->id;
	ck_assert_int_eq(in->text_len, 5);
	ck_assert(memcmp(in->text, "a\0b\xc3\xa9", 5) == 0);
	ck_assert_str_eq(in->from, "27820000001");
	return 0;
}

START_TEST(test_inbox_lists_after_a_cursor_and_prunes_old_ones)
{
	struct store_inbound in;
	struct store *s = open_store();
	int64_t ids[8] = { 0 };
	int i;

	memset(&in, 0, sizeof(in));
	in.from = "27820000001";
	in.to = "27820000002";
	in.charset = "UTF-8";
	in.code = "";
	in.text = "a\0b\xc3\xa9";
	in.text_len = 5;
	for (i = 0; i < 4; i++) {
		in.received = 1000 + i;
		ck_assert_int_eq(store_inbox_insert(s, &in), i + 1);
	}
	ck_assert_int_eq(store_commit(s), 0);
	ck_assert_int_eq(store_inbox_list(s, 1, 2, inbox_collect, ids), 2);
	ck_assert_int_eq(ids[0], 2);
	ck_assert_int_eq(ids[1], 2);
	ck_assert_int_eq(ids[2], 3);
	ck_assert_int_eq(store_inbox_prune(s, 1002, 10), 2);
	ids[0] = 0;
	ck_assert_int_eq(store_inbox_list(s, 0, 10, inbox_collect, ids), 2);
	ck_assert_int_eq(ids[1], 3);
	store_close(s);
}
END_TEST

START_TEST(test_oldest_unfinished_message_is_found_by_priority)
{
	struct store *s = open_store();
	struct store_message m;
	int64_t created = 0, a, b;

	ck_assert_int_eq(store_oldest(s, &created), 0);
	msg_init(&m, "", 0);
	m.created = 5000;
	ck_assert_int_eq(store_insert(s, &m), 0);
	a = m.id;
	msg_init(&m, "", 1);
	m.created = 7000;
	ck_assert_int_eq(store_insert(s, &m), 0);
	b = m.id;
	ck_assert_int_eq(store_oldest(s, &created), 1);
	ck_assert_int_eq(created, 5000);
	set_state(s, a, MESSAGE_SENT, 9000);
	ck_assert_int_eq(store_oldest(s, &created), 1);
	ck_assert_int_eq(created, 7000);
	set_state(s, b, MESSAGE_FAILED, 9000);
	ck_assert_int_eq(store_oldest(s, &created), 0);
	store_close(s);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite *suite;
	TCase *tc;

	suite = suite_create("store");

	tc = tcase_create("schema");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_migration_from_empty_file_sets_latest_version);
	tcase_add_test(tc, test_zero_byte_file_is_migrated);
	tcase_add_test(tc, test_new_file_is_owner_only_and_in_wal_mode);
	tcase_add_test(tc, test_reopen_keeps_messages);
	tcase_add_test(tc, test_newer_user_version_is_refused);
	tcase_add_test(tc, test_version_1_file_migrates_and_keeps_its_messages);
	tcase_add_test(tc, test_report_fields_round_trip);
	tcase_add_test(tc, test_oldest_unfinished_message_is_found_by_priority);
	tcase_add_test(tc, test_inbox_lists_after_a_cursor_and_prunes_old_ones);
	tcase_add_test(tc, test_non_database_file_is_refused);
	tcase_add_test(tc, test_missing_directory_is_refused);
	suite_add_tcase(suite, tc);

	tc = tcase_create("messages");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_insert_commit_get_returns_every_field);
	tcase_add_test(tc, test_empty_text_and_default_sender_round_trip);
	tcase_add_test(tc, test_writes_open_a_transaction_and_commit_ends_it);
	tcase_add_test(tc, test_rollback_discards_uncommitted_inserts);
	tcase_add_test(tc, test_close_without_commit_discards_inserts);
	tcase_add_test(tc,
	    test_ref_lookup_finds_message_and_empty_refs_do_not_collide);
	tcase_add_test(tc, test_duplicate_ref_insert_fails_and_keeps_the_batch);
	tcase_add_test(tc, test_update_changes_state_and_fields);
	tcase_add_test(tc, test_update_of_missing_message_fails);
	suite_add_tcase(suite, tc);

	tc = tcase_create("queue");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc,
	    test_load_returns_unfinished_in_priority_then_id_order);
	tcase_add_test(tc,
	    test_load_stops_when_callback_fails_and_can_run_again);
	tcase_add_test(tc,
	    test_load_lets_callback_update_the_message_it_is_given);
	tcase_add_test(tc, test_count_per_state);
	tcase_add_test(tc,
	    test_prune_deletes_only_finished_old_rows_at_most_limit);
	tcase_add_test(tc, test_ids_never_reused_after_pruning_the_newest);
	suite_add_tcase(suite, tc);

	tc = tcase_create("bulk");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_bulk_insert_and_load_are_fast);
	suite_add_tcase(suite, tc);

	return suite;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(store_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
