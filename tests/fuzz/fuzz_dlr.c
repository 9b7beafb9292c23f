/*
 * libFuzzer target for the delivery-report listener's query parsers: any
 * bytes, NUL-terminated, as a report's and as an inbound message's query
 * string. Buffers are exactly the size passed, so that ASan sees overruns.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlr.h"

#include "fuzz.h"

#define FUZZ_SECRET	"fuzz-secret"
#define FUZZ_PUBLIC	"http://127.0.0.1:8025/dlr"

/* A token buffer far smaller than a token must still not be overrun. */
#define FUZZ_SHORT_TOKEN	5

static void
fuzz_check_code(int code)
{
	const char *name = dlr_code_name(code);

	FUZZ_CHECK(name != NULL && name[0] != '\0');
	if (code == DLR_DELIVERED || code == DLR_UNDELIVERED ||
	    code == DLR_FAILED)
		FUZZ_CHECK(dlr_code_final(code));
	if (code == DLR_QUEUED || code == DLR_SENT)
		FUZZ_CHECK(!dlr_code_final(code));
}

/* The token check agrees with the token itself, whatever was offered. */
static void
fuzz_check_token(int64_t id, const char *token)
{
	char want[DLR_TOKEN_LEN + 1];

	dlr_token(FUZZ_SECRET, id, want);
	FUZZ_CHECK(strlen(want) == DLR_TOKEN_LEN);
	FUZZ_CHECK(dlr_token_check(FUZZ_SECRET, id, token) ==
	    (strcmp(token, want) == 0));
	FUZZ_CHECK(dlr_token_check(FUZZ_SECRET, id, want) == 1);
}

/* What dlr_report_url makes, with %d filled in, parses back to itself. */
static void
fuzz_check_round_trip(int64_t id)
{
	char *url, *query, *mark, token[DLR_TOKEN_LEN + 1];
	char want[DLR_TOKEN_LEN + 1];
	int64_t got;
	size_t n;
	int code;

	url = dlr_report_url(FUZZ_PUBLIC, FUZZ_SECRET, id);
	FUZZ_CHECK(url != NULL);
	FUZZ_CHECK(strncmp(url, FUZZ_PUBLIC "?", strlen(FUZZ_PUBLIC) + 1) ==
	    0);
	mark = strstr(url, "%d");
	FUZZ_CHECK(mark != NULL);

	n = strlen(url);
	query = malloc(n + 1);
	FUZZ_CHECK(query != NULL);
	snprintf(query, n + 1, "%.*s16%s", (int)(mark - url) -
	    (int)strlen(FUZZ_PUBLIC "?"), url + strlen(FUZZ_PUBLIC "?"),
	    mark + 2);
	FUZZ_CHECK(dlr_parse_report(query, &got, token, sizeof(token),
	    &code) == 0);
	FUZZ_CHECK(got == id && code == 16);
	dlr_token(FUZZ_SECRET, id, want);
	FUZZ_CHECK(strcmp(token, want) == 0);
	free(query);
	free(url);
}

static void
fuzz_report(const char *query, const uint8_t *data, size_t size)
{
	char *token, *shorter;
	int64_t id = 0, sid = 0, rid;
	int code = 0, scode = 0, rc;

	token = malloc(DLR_TOKEN_LEN + 1);
	FUZZ_CHECK(token != NULL);
	rc = dlr_parse_report(query, &id, token, DLR_TOKEN_LEN + 1, &code);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		/* Message ids are the protocol's: 1 to INT64_MAX. */
		FUZZ_CHECK(id > 0);
		FUZZ_CHECK(fuzz_terminated(token, DLR_TOKEN_LEN + 1));
		fuzz_check_code(code);
		fuzz_check_token(id, token);
	}

	shorter = malloc(FUZZ_SHORT_TOKEN);
	FUZZ_CHECK(shorter != NULL);
	if (dlr_parse_report(query, &sid, shorter, FUZZ_SHORT_TOKEN,
	    &scode) == 0)
		FUZZ_CHECK(fuzz_terminated(shorter, FUZZ_SHORT_TOKEN));
	free(shorter);
	free(token);

	/* Some positive message id, the parsed one where there is one. */
	if (rc == 0)
		rid = id;
	else {
		rid = 0;
		memcpy(&rid, data, size < sizeof(rid) ? size : sizeof(rid));
		rid = (int64_t)((uint64_t)rid & INT64_MAX);
		if (rid == 0)
			rid = 1;
	}
	fuzz_check_round_trip(rid);
}

/* A field is "" or a string inside STORAGE (LEN bytes). */
static int
fuzz_field(const char *p, const char *storage, size_t len)
{
	uintptr_t at = (uintptr_t)p, base = (uintptr_t)storage;

	if (p == NULL)
		return 0;
	if (p[0] == '\0')
		return 1;
	return at >= base && at < base + len &&
	    fuzz_terminated(p, base + len - at);
}

static void
fuzz_inbound_with(const char *query, size_t storagelen)
{
	struct dlr_inbound m;
	char *storage;

	storage = malloc(storagelen);
	FUZZ_CHECK(storage != NULL);
	memset(&m, 0, sizeof(m));
	if (dlr_parse_inbound(query, &m, storage, storagelen) == 0) {
		FUZZ_CHECK(fuzz_field(m.from, storage, storagelen));
		FUZZ_CHECK(fuzz_field(m.to, storage, storagelen));
		FUZZ_CHECK(fuzz_field(m.charset, storage, storagelen));
		FUZZ_CHECK(fuzz_field(m.code, storage, storagelen));
		FUZZ_CHECK(m.text != NULL && m.text[m.text_len] == '\0');
		FUZZ_CHECK(fuzz_utf8_valid(m.text, m.text_len));
		dlr_inbound_clear(&m);
	}
	free(storage);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *query;

	query = malloc(size + 1);
	FUZZ_CHECK(query != NULL);
	memcpy(query, data, size);
	query[size] = '\0';

	fuzz_report(query, data, size);
	fuzz_inbound_with(query, size + 64);
	fuzz_inbound_with(query, size / 4 + 1);

	free(query);
	return 0;
}
