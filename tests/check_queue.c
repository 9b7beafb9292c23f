/* Tests of the in-memory queue: priority, age order, deferral. */
#include <check.h>
#include <stdlib.h>

#include "queue.h"

static struct queue_item
item(int64_t id, int priority, int64_t due)
{
	struct queue_item it = { 0 };

	it.id = id;
	it.priority = (int8_t)priority;
	it.due = due;
	return it;
}

START_TEST(high_priority_comes_first_then_oldest)
{
	struct queue *q = queue_new();
	struct queue_item it;
	static const int64_t order[] = { 3, 5, 1, 2, 4 };
	size_t i;

	it = item(1, 0, 0); queue_push(q, &it);
	it = item(5, 1, 0); queue_push(q, &it);
	it = item(2, 0, 0); queue_push(q, &it);
	it = item(3, 1, 0); queue_push(q, &it);
	it = item(4, 0, 0); queue_push(q, &it);
	ck_assert_int_eq(queue_ready_priority(q, 1), 2);
	ck_assert_int_eq(queue_ready_priority(q, 0), 3);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(queue_pop(q, &it), 1);
		ck_assert_int_eq(it.id, order[i]);
	}
	ck_assert_int_eq(queue_pop(q, &it), 0);
	queue_free(q);
}
END_TEST

START_TEST(an_item_pushed_back_keeps_its_place)
{
	struct queue *q = queue_new();
	struct queue_item it, first;
	int64_t id;

	for (id = 1; id <= 100; id++) {
		it = item(id, 0, 0);
		queue_push(q, &it);
	}
	queue_pop(q, &first);
	queue_pop(q, &it);
	/* Both go back, as after a throttle answer: order is kept. */
	queue_push(q, &it);
	queue_push(q, &first);
	for (id = 1; id <= 100; id++) {
		ck_assert_int_eq(queue_pop(q, &it), 1);
		ck_assert_int_eq(it.id, id);
	}
	queue_free(q);
}
END_TEST

START_TEST(deferred_items_wait_until_due)
{
	struct queue *q = queue_new();
	struct queue_item it;

	it = item(1, 0, 500); queue_defer(q, &it);
	it = item(2, 0, 100); queue_defer(q, &it);
	it = item(3, 1, 300); queue_defer(q, &it);
	ck_assert_int_eq(queue_next_due(q), 100);
	ck_assert_int_eq(queue_promote(q, 99), 0);
	ck_assert_int_eq(queue_pop(q, &it), 0);
	ck_assert_int_eq(queue_promote(q, 300), 2);
	ck_assert_int_eq(queue_deferred(q), 1);
	ck_assert_int_eq(queue_next_due(q), 500);
	ck_assert_int_eq(queue_pop(q, &it), 1);
	ck_assert_int_eq(it.id, 3);
	ck_assert_int_eq(queue_pop(q, &it), 1);
	ck_assert_int_eq(it.id, 2);
	queue_promote(q, 1000);
	ck_assert_int_eq(queue_next_due(q), -1);
	queue_free(q);
}
END_TEST

START_TEST(a_waiting_retry_does_not_block_the_rest)
{
	struct queue *q = queue_new();
	struct queue_item it;

	it = item(1, 0, 10000); queue_defer(q, &it);
	it = item(2, 0, 0); queue_push(q, &it);
	ck_assert_int_eq(queue_pop(q, &it), 1);
	ck_assert_int_eq(it.id, 2);
	queue_free(q);
}
END_TEST

START_TEST(many_items_come_out_in_order)
{
	struct queue *q = queue_new();
	struct queue_item it;
	int64_t id, last = 0;

	/* Pushed in a scrambled order, popped strictly by id. */
	for (id = 0; id < 100000; id++) {
		it = item((id * 7919) % 100000 + 1, 0, 0);
		if (queue_push(q, &it) == -1)
			ck_abort_msg("push failed");
	}
	for (id = 0; id < 100000; id++) {
		if (queue_pop(q, &it) != 1 || it.id <= last)
			ck_abort_msg("item %lld out of order", (long long)id);
		last = it.id;
	}
	ck_assert_int_eq(last, 100000);
	queue_free(q);
}
END_TEST

static void
collect(void *arg, const struct queue_item *it)
{
	int64_t *sum = arg;

	*sum += it->id;
}

START_TEST(expired_items_leave_both_heaps_and_order_holds)
{
	struct queue *q = queue_new();
	struct queue_item it;
	int64_t id, sum = 0, last = 0;

	for (id = 1; id <= 1000; id++) {
		it = item(id, (int)(id % 3 == 0), 0);
		it.valid_until = id % 2 ? 100 : 10000;
		if (id % 5 == 0) {
			it.due = 50000;
			queue_defer(q, &it);
		} else
			queue_push(q, &it);
	}
	/* The odd ids end at 100: 500 of them, summing to 250000. */
	ck_assert_int_eq(queue_expire(q, 100, collect, &sum), 500);
	ck_assert_int_eq(sum, 250000);
	ck_assert_int_eq(queue_ready(q) + queue_deferred(q), 500);
	ck_assert_int_eq(queue_ready_priority(q, 1) + queue_ready_priority(q, 0),
	    queue_ready(q));
	while (queue_pop(q, &it) && it.priority == 1) {
		ck_assert_int_gt(it.id, last);
		ck_assert_int_eq(it.id % 2, 0);
		last = it.id;
	}
	ck_assert_int_eq(queue_expire(q, 100, collect, &sum), 0);
	queue_free(q);
}
END_TEST

static Suite *
queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, high_priority_comes_first_then_oldest);
	tcase_add_test(tc, an_item_pushed_back_keeps_its_place);
	tcase_add_test(tc, deferred_items_wait_until_due);
	tcase_add_test(tc, a_waiting_retry_does_not_block_the_rest);
	tcase_add_test(tc, many_items_come_out_in_order);
	tcase_add_test(tc, expired_items_leave_both_heaps_and_order_holds);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(queue_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
