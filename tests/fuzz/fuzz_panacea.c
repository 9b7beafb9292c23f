/*
 * libFuzzer target for the Panacea answer parsers: any bytes as the body of
 * a message_send and a user_get_balance answer, and as a Retry-After value.
 * Checks every result against the outcome rules of the upstream's API.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "panacea.h"

#include "fuzz.h"

#define FUZZ_RETRY_AFTER_CAP	(86400 * (int64_t)1000)
#define FUZZ_NOW		INT64_C(1796292000000)	/* 2026-12-03 */

/* HTTP statuses other than 200 that an upstream or a proxy sends. */
static const long fuzz_statuses[] = {
	0, 204, 301, 302, 400, 401, 403, 404, 429, 500, 502, 503, 504
};

/* What holds for every result, whatever produced it. */
static void
fuzz_check_result(const struct panacea_result *r)
{
	FUZZ_CHECK(r->outcome == PANACEA_SENT ||
	    r->outcome == PANACEA_THROTTLED || r->outcome == PANACEA_RETRY ||
	    r->outcome == PANACEA_FAILED || r->outcome == PANACEA_HOLD);
	FUZZ_CHECK(strcmp(panacea_outcome_name(r->outcome), "unknown") != 0);
	FUZZ_CHECK(fuzz_kebab(r->reason, sizeof(r->reason)));
	FUZZ_CHECK(fuzz_terminated(r->upstream_id, sizeof(r->upstream_id)));
	FUZZ_CHECK(r->upstream_id[0] == '\0' || r->outcome == PANACEA_SENT);
	FUZZ_CHECK(r->has_code == 0 || r->has_code == 1);
	FUZZ_CHECK(r->has_balance == 0 || r->has_balance == 1);
	FUZZ_CHECK(r->attempt_cap >= 0);
	FUZZ_CHECK(r->attempt_cap == 0 || r->outcome == PANACEA_RETRY);

	/* An answer without a status is a broken one: a transport error. */
	if (!r->has_code)
		FUZZ_CHECK(r->outcome == PANACEA_RETRY);
	if (r->has_code && r->code < 0)
		FUZZ_CHECK(r->outcome != PANACEA_SENT);
	if (r->has_code && (r->code == -4096 || r->code == -8192))
		FUZZ_CHECK(r->outcome == PANACEA_THROTTLED);
	if (r->outcome == PANACEA_SENT)
		FUZZ_CHECK(r->has_code && r->code >= 0);
}

static void
fuzz_check_send(const struct panacea_result *r)
{
	fuzz_check_result(r);
	FUZZ_CHECK(!r->has_balance);

	/* Accepted is accepted, usable id or not: it must not go out twice. */
	if (r->has_code && r->code >= 0)
		FUZZ_CHECK(r->outcome == PANACEA_SENT);
}

static void
fuzz_check_balance(const struct panacea_result *b,
    const struct panacea_result *s)
{
	fuzz_check_result(b);
	if (b->has_balance)
		FUZZ_CHECK(b->outcome == PANACEA_SENT && isfinite(b->balance));
	if (b->outcome == PANACEA_SENT)
		FUZZ_CHECK(b->has_balance);

	/* Errors and broken answers are classified as for message_send. */
	FUZZ_CHECK(b->has_code == s->has_code);
	if (!b->has_code || b->code < 0) {
		FUZZ_CHECK(b->outcome == s->outcome);
		FUZZ_CHECK(strcmp(b->reason, s->reason) == 0);
		FUZZ_CHECK(b->attempt_cap == s->attempt_cap);
		FUZZ_CHECK(!b->has_code || b->code == s->code);
	}
}

static void
fuzz_check_http(long status, const uint8_t *data, size_t size)
{
	struct panacea_result r;
	char want[32];

	panacea_classify_send(status, (const char *)data, size, &r);
	fuzz_check_send(&r);
	FUZZ_CHECK(r.outcome == PANACEA_RETRY && !r.has_code);
	snprintf(want, sizeof(want), "http-%ld", status);
	FUZZ_CHECK(strcmp(r.reason, want) == 0);
}

/* Delay seconds: digits alone; a date never starts with one. */
static void
fuzz_check_retry_after(const char *value)
{
	int64_t ms, later, secs = 0;
	const char *p;

	ms = panacea_retry_after(value, FUZZ_NOW);
	later = panacea_retry_after(value, FUZZ_NOW + 1000);
	FUZZ_CHECK(ms == -1 || (ms >= 0 && ms <= FUZZ_RETRY_AFTER_CAP));
	FUZZ_CHECK((ms == -1) == (later == -1));
	if (ms > 0 && ms < FUZZ_RETRY_AFTER_CAP)
		FUZZ_CHECK(later <= ms);

	if (value[0] < '0' || value[0] > '9')
		return;
	for (p = value; *p >= '0' && *p <= '9'; p++)
		if (secs <= 86400)
			secs = secs * 10 + (*p - '0');
	if (*p != '\0')
		return;
	FUZZ_CHECK(ms == (secs > 86400 ? FUZZ_RETRY_AFTER_CAP : secs * 1000));
	FUZZ_CHECK(later == ms);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct panacea_result s, b;
	char *value;

	panacea_classify_send(200, (const char *)data, size, &s);
	fuzz_check_send(&s);
	panacea_classify_balance(200, (const char *)data, size, &b);
	fuzz_check_balance(&b, &s);

	fuzz_check_http(fuzz_statuses[size % (sizeof(fuzz_statuses) /
	    sizeof(fuzz_statuses[0]))], data, size);

	/* A header value ends at its first NUL, as libcurl hands it over. */
	value = malloc(size + 1);
	FUZZ_CHECK(value != NULL);
	memcpy(value, data, size);
	value[size] = '\0';
	fuzz_check_retry_after(value);
	free(value);
	return 0;
}
