/*
 * cpg_test: every function of libcpg.so.4, success and error paths, against a running
 * cluster. Built against corosync's installed <corosync/cpg.h> and linked with -lcpg, run
 * with rotor's libcpg first on LD_LIBRARY_PATH.
 *
 *   cpg_test NODEID MEMBERS   (this node's id, the number of nodes in the ring)
 *
 * Prints one "ok - what" line per check; the first failed check prints "not ok - what" and
 * exits 1.
 */
#define _GNU_SOURCE
#include <corosync/cpg.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define GROUP "capi-test"

static int checks;

#define CHECK(cond, ...)                                                                 \
	do {                                                                             \
		checks++;                                                                \
		if (!(cond)) {                                                           \
			printf("not ok - ");                                             \
			printf(__VA_ARGS__);                                             \
			printf(" (line %d)\n", __LINE__);                                \
			exit(1);                                                         \
		}                                                                        \
		printf("ok - ");                                                         \
		printf(__VA_ARGS__);                                                     \
		printf("\n");                                                            \
	} while (0)

#define EXPECT(call, want) CHECK((call) == (want), "%s == %s", #call, #want)

static struct {
	int delivered;
	char last_msg[256];
	size_t last_len;
	uint32_t last_nodeid, last_pid;
	int confchgs;
	size_t members;
	int self_member;
	int left_reason;
	int totem_confchgs;
	uint32_t totem_members;
	uint64_t totem_seq;
	int pings_answered;
	void *context_seen;
	cpg_handle_t finalize_me;
	int finalized_in_callback;
} seen;

static uint32_t my_nodeid;

static void on_deliver(cpg_handle_t h, const struct cpg_name *group, uint32_t nodeid,
		       uint32_t pid, void *msg, size_t len)
{
	seen.delivered++;
	seen.last_len = len;
	seen.last_nodeid = nodeid;
	seen.last_pid = pid;
	memset(seen.last_msg, 0, sizeof seen.last_msg);
	memcpy(seen.last_msg, msg, len < sizeof seen.last_msg - 1 ? len : sizeof seen.last_msg - 1);
	cpg_context_get(h, &seen.context_seen);
	/* Re-entrancy: multicast from inside the callback. */
	if (len == 4 && memcmp(msg, "ping", 4) == 0) {
		struct iovec iov = { .iov_base = "pong", .iov_len = 4 };
		if (cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov, 1) == CS_OK)
			seen.pings_answered++;
	}
	if (h == seen.finalize_me) {
		seen.finalized_in_callback = cpg_finalize(h) == CS_OK;
	}
	(void)group;
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *group,
		       const struct cpg_address *members, size_t member_count,
		       const struct cpg_address *left, size_t left_count,
		       const struct cpg_address *joined, size_t joined_count)
{
	seen.confchgs++;
	seen.members = member_count;
	seen.self_member = 0;
	for (size_t i = 0; i < member_count; i++)
		if (members[i].nodeid == my_nodeid && members[i].pid == (uint32_t)getpid())
			seen.self_member = 1;
	if (left_count > 0)
		seen.left_reason = (int)left[0].reason;
	(void)h; (void)group; (void)joined; (void)joined_count;
}

static void on_totem(cpg_handle_t h, struct cpg_ring_id ring, uint32_t count, const uint32_t *list)
{
	seen.totem_confchgs++;
	seen.totem_members = count;
	seen.totem_seq = ring.seq;
	(void)h; (void)list;
}

static cs_error_t blocking_result = CS_OK;

static void *blocking_dispatch(void *arg)
{
	blocking_result = cpg_dispatch(*(cpg_handle_t *)arg, CS_DISPATCH_BLOCKING);
	return NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls the fd and dispatches ALL until *counter reaches want (10 s at most). */
/* Dispatches until `*counter` reaches `want` or `limit_ms` passes. */
static int pump_for(cpg_handle_t h, int *counter, int want, uint64_t limit_ms)
{
	int fd;
	uint64_t deadline = now_ms() + limit_ms;
	if (cpg_fd_get(h, &fd) != CS_OK)
		return 0;
	while (*counter < want && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, 100);
		cs_error_t err = cpg_dispatch(h, CS_DISPATCH_ALL);
		if (err != CS_OK)
			return 0;
		if (cpg_fd_get(h, &fd) != CS_OK)
			return 0;
	}
	return *counter >= want;
}

/* A bound that only a lost message or a hung library reaches, even on a loaded machine. */
static int pump(cpg_handle_t h, int *counter, int want)
{
	return pump_for(h, counter, want, 10000);
}

static struct cpg_name name_of(const char *s)
{
	struct cpg_name n;
	memset(&n, 0, sizeof n);
	n.length = (uint32_t)strlen(s);
	memcpy(n.value, s, n.length);
	return n;
}

static int mcast(cpg_handle_t h, const char *text)
{
	struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
	cs_error_t err;
	while ((err = cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov, 1)) == CS_ERR_TRY_AGAIN)
		cpg_dispatch(h, CS_DISPATCH_ALL);
	return err;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: cpg_test NODEID MEMBERS\n");
		return 2;
	}
	uint32_t want_node = (uint32_t)strtoul(argv[1], NULL, 10);
	uint32_t ring_members = (uint32_t)strtoul(argv[2], NULL, 10);
	cpg_handle_t h, h2, h3;
	int fd, n;
	unsigned int nodeid;
	uint32_t size;
	void *ctx;
	int ctx_a, ctx_b;
	struct cpg_name group = name_of(GROUP), other = name_of("capi-other");
	cpg_flow_control_state_t fc;
	cpg_iteration_handle_t it;
	struct cpg_iteration_description_t d;
	struct cpg_address list[CPG_MEMBERS_MAX];

	/* Handles that never existed. */
	EXPECT(cpg_finalize(0), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_dispatch(12345, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_fd_get(0, &fd), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_local_get(0, &nodeid), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_context_get(0, &ctx), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_iteration_next(999, &d), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_iteration_finalize(999), CS_ERR_BAD_HANDLE);

	/* Initialization. */
	cpg_model_v1_data_t model = {
		.model = CPG_MODEL_V1,
		.cpg_deliver_fn = on_deliver,
		.cpg_confchg_fn = on_confchg,
		.cpg_totem_confchg_fn = on_totem,
		.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF,
	};
	EXPECT(cpg_model_initialize(&h, 2, (cpg_model_data_t *)&model, NULL), CS_ERR_INVALID_PARAM);
	model.flags = 0x80;
	EXPECT(cpg_model_initialize(&h, CPG_MODEL_V1, (cpg_model_data_t *)&model, NULL),
	       CS_ERR_INVALID_PARAM);
	model.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF;
	EXPECT(cpg_model_initialize(NULL, CPG_MODEL_V1, (cpg_model_data_t *)&model, NULL),
	       CS_ERR_INVALID_PARAM);
	EXPECT(cpg_model_initialize(&h, CPG_MODEL_V1, (cpg_model_data_t *)&model, &ctx_a), CS_OK);
	EXPECT(cpg_context_get(h, &ctx), CS_OK);
	CHECK(ctx == &ctx_a, "context from cpg_model_initialize");
	EXPECT(cpg_context_set(h, &ctx_b), CS_OK);
	EXPECT(cpg_context_get(h, &ctx), CS_OK);
	CHECK(ctx == &ctx_b, "context from cpg_context_set");
	EXPECT(cpg_context_get(h, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_local_get(h, &nodeid), CS_OK);
	CHECK(nodeid == want_node, "cpg_local_get: node %u", nodeid);
	my_nodeid = nodeid;
	EXPECT(cpg_max_atomic_msgsize_get(h, &size), CS_OK);
	CHECK(size >= 1024 * 1024 - 1024, "max atomic message size %u", size);
	EXPECT(cpg_fd_get(h, &fd), CS_OK);
	CHECK(fd >= 0, "pollable fd %d", fd);
	EXPECT(cpg_fd_get(h, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_flow_control_state_get(h, &fc), CS_OK);
	CHECK(fc == CPG_FLOW_CONTROL_DISABLED, "flow control disabled");
	EXPECT(cpg_dispatch(h, 9), CS_ERR_INVALID_PARAM);

	/* Join. */
	struct cpg_name long_name = name_of("x");
	long_name.length = CPG_MAX_NAME_LENGTH + 1;
	EXPECT(cpg_join(h, &long_name), CS_ERR_NAME_TOO_LONG);
	struct cpg_name empty = name_of("");
	EXPECT(cpg_join(h, &empty), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_join(h, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_AGREED, NULL, 0), CS_ERR_NOT_EXIST);
	EXPECT(cpg_join(h, &group), CS_OK);
	EXPECT(cpg_join(h, &group), CS_ERR_EXIST);
	CHECK(pump(h, &seen.totem_confchgs, 1), "initial totem confchg delivered");
	CHECK(seen.totem_members == ring_members, "totem confchg with %u members", seen.totem_members);
	CHECK(pump(h, &seen.self_member, 1), "confchg with this process as a member");

	EXPECT(cpg_membership_get(h, &group, list, &n), CS_OK);
	CHECK(n >= 1, "membership has %d members", n);
	int found = 0;
	for (int i = 0; i < n; i++)
		found |= list[i].nodeid == my_nodeid && list[i].pid == (uint32_t)getpid();
	CHECK(found, "this process is in the membership");
	EXPECT(cpg_membership_get(h, &group, NULL, &n), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_membership_get(h, &long_name, list, &n), CS_ERR_NAME_TOO_LONG);

	/* Iteration. */
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_NAME_ONLY, NULL, &it), CS_OK);
	found = 0;
	while (cpg_iteration_next(it, &d) == CS_OK)
		found |= d.group.length == group.length && memcmp(d.group.value, GROUP, group.length) == 0;
	CHECK(found, "NAME_ONLY lists " GROUP);
	EXPECT(cpg_iteration_next(it, &d), CS_ERR_NO_SECTIONS);
	EXPECT(cpg_iteration_next(it, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_iteration_finalize(it), CS_OK);
	EXPECT(cpg_iteration_next(it, &d), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_iteration_finalize(it), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_ONE_GROUP, &group, &it), CS_OK);
	EXPECT(cpg_iteration_next(it, &d), CS_OK);
	CHECK(d.nodeid != 0 && d.pid != 0, "ONE_GROUP row %u/%u", d.nodeid, d.pid);
	EXPECT(cpg_iteration_finalize(it), CS_OK);
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_ALL, NULL, &it), CS_OK);
	found = 0;
	while (cpg_iteration_next(it, &d) == CS_OK)
		found |= d.nodeid == my_nodeid && d.pid == (uint32_t)getpid();
	CHECK(found, "ALL lists this process");
	EXPECT(cpg_iteration_finalize(it), CS_OK);
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_ONE_GROUP, NULL, &it), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_NAME_ONLY, &group, &it), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_iteration_initialize(h, 7, NULL, &it), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_ALL, NULL, NULL), CS_ERR_INVALID_PARAM);

	/* Multicast: gathered iovecs, both guarantees, an empty message, the limits. */
	struct iovec two[2] = { { .iov_base = "hello ", .iov_len = 6 },
				{ .iov_base = "world", .iov_len = 5 } };
	int before = seen.delivered;
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_AGREED, two, 2), CS_OK);
	CHECK(pump(h, &seen.delivered, before + 1), "gathered message delivered");
	CHECK(strcmp(seen.last_msg, "hello world") == 0 && seen.last_len == 11,
	      "delivered \"%s\"", seen.last_msg);
	CHECK(seen.last_nodeid == my_nodeid && seen.last_pid == (uint32_t)getpid(),
	      "sender is this process");
	CHECK(seen.context_seen == &ctx_b, "context visible from the callback");
	before = seen.delivered;
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_SAFE, two, 1), CS_OK);
	CHECK(pump(h, &seen.delivered, before + 1), "SAFE message delivered");
	before = seen.delivered;
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_AGREED, NULL, 0), CS_OK);
	CHECK(pump(h, &seen.delivered, before + 1), "empty message delivered");
	CHECK(seen.last_len == 0, "empty message has length 0");
	EXPECT(cpg_mcast_joined(h, 9, two, 1), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_AGREED, NULL, 1), CS_ERR_INVALID_PARAM);
	char *big = calloc(1, (size_t)size + 1);
	struct iovec too_big = { .iov_base = big, .iov_len = (size_t)size + 1 };
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_AGREED, &too_big, 1), CS_ERR_TOO_BIG);
	too_big.iov_len = size;
	before = seen.delivered;
	cs_error_t err;
	while ((err = cpg_mcast_joined(h, CPG_TYPE_AGREED, &too_big, 1)) == CS_ERR_TRY_AGAIN)
		cpg_dispatch(h, CS_DISPATCH_ALL);
	CHECK(err == CS_OK, "largest message accepted (%d)", err);
	CHECK(pump(h, &seen.delivered, before + 1) && seen.last_len == size,
	      "largest message delivered whole (%zu bytes)", seen.last_len);
	free(big);

	/* Back-pressure: multicasting without dispatching fills the ring to the node. */
	char *chunk = calloc(1, 256 * 1024);
	struct iovec ci = { .iov_base = chunk, .iov_len = 256 * 1024 };
	int sent = 0;
	before = seen.delivered;
	for (err = CS_OK; err == CS_OK && sent < 400; sent++)
		err = cpg_mcast_joined(h, CPG_TYPE_AGREED, &ci, 1);
	sent--;
	CHECK(err == CS_ERR_TRY_AGAIN, "CS_ERR_TRY_AGAIN after %d multicasts of 256 KiB without dispatch",
	      sent);
	EXPECT(cpg_flow_control_state_get(h, &fc), CS_OK);
	CHECK(fc == CPG_FLOW_CONTROL_ENABLED, "flow control enabled while refused");
	while ((err = cpg_mcast_joined(h, CPG_TYPE_AGREED, &ci, 1)) == CS_ERR_TRY_AGAIN)
		cpg_dispatch(h, CS_DISPATCH_ALL);
	CHECK(err == CS_OK, "accepted again after dispatching (%d)", err);
	EXPECT(cpg_flow_control_state_get(h, &fc), CS_OK);
	CHECK(fc == CPG_FLOW_CONTROL_DISABLED, "flow control disabled once accepted");
	/* Several MiB through a debug-built cluster on a busy machine: a generous bound. */
	CHECK(pump_for(h, &seen.delivered, before + sent + 1, 120000),
	      "all %d delivered, nothing lost (%d seen)", sent + 1,
	      seen.delivered - before);
	free(chunk);

	/* Re-entrancy: the deliver callback multicasts "pong". */
	before = seen.delivered;
	EXPECT(mcast(h, "ping"), CS_OK);
	CHECK(pump(h, &seen.delivered, before + 2), "ping and the pong sent from the callback");
	CHECK(seen.pings_answered == 1 && strcmp(seen.last_msg, "pong") == 0, "pong delivered");

	/* Zero-copy buffers. */
	void *zb;
	EXPECT(cpg_zcb_alloc(h, 64, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_zcb_alloc(h, 64, &zb), CS_OK);
	memcpy(zb, "zero-copy", 9);
	before = seen.delivered;
	EXPECT(cpg_zcb_mcast_joined(h, CPG_TYPE_AGREED, zb, 9), CS_OK);
	CHECK(pump(h, &seen.delivered, before + 1) && strcmp(seen.last_msg, "zero-copy") == 0,
	      "zero-copy message delivered");
	EXPECT(cpg_zcb_mcast_joined(h, CPG_TYPE_AGREED, zb, (size_t)size + 1), CS_ERR_TOO_BIG);
	EXPECT(cpg_zcb_mcast_joined(h, CPG_TYPE_AGREED, zb, 65), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_zcb_free(h, zb), CS_OK);
	EXPECT(cpg_zcb_free(h, zb), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_zcb_mcast_joined(h, CPG_TYPE_AGREED, zb, 9), CS_ERR_INVALID_PARAM);

	/* Dispatch modes. */
	EXPECT(cpg_dispatch(h, CS_DISPATCH_ALL), CS_OK);
	EXPECT(cpg_dispatch(h, CS_DISPATCH_ONE_NONBLOCKING), CS_ERR_TRY_AGAIN);
	before = seen.delivered;
	EXPECT(mcast(h, "one"), CS_OK);
	EXPECT(mcast(h, "two"), CS_OK);
	EXPECT(cpg_dispatch(h, CS_DISPATCH_ONE), CS_OK);
	CHECK(seen.delivered == before + 1, "CS_DISPATCH_ONE waits for and runs one callback");
	EXPECT(cpg_dispatch(h, CS_DISPATCH_ONE), CS_OK);
	CHECK(seen.delivered == before + 2 && strcmp(seen.last_msg, "two") == 0,
	      "second CS_DISPATCH_ONE runs the next");

	/* Leave. */
	EXPECT(cpg_leave(h, &other), CS_ERR_NOT_EXIST);
	EXPECT(cpg_leave(h, &long_name), CS_ERR_NAME_TOO_LONG);

	/* A second handle without callbacks, a third finalized from its own callback. */
	cpg_callbacks_t cb = { .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg };
	EXPECT(cpg_initialize(NULL, &cb), CS_ERR_INVALID_PARAM);
	EXPECT(cpg_initialize(&h2, NULL), CS_OK);
	EXPECT(cpg_join(h2, &other), CS_OK);
	EXPECT(mcast(h2, "nobody listens"), CS_OK);
	usleep(100000);
	EXPECT(cpg_dispatch(h2, CS_DISPATCH_ALL), CS_OK);
	EXPECT(cpg_finalize(h2), CS_OK);
	EXPECT(cpg_initialize(&h3, &cb), CS_OK);
	seen.finalize_me = h3;
	struct cpg_name third = name_of("capi-third");
	EXPECT(cpg_join(h3, &third), CS_OK);
	/* Sent right after the join: delivered after the join's confchg, to the sender too. */
	EXPECT(mcast(h3, "bye"), CS_OK);
	int fd3;
	EXPECT(cpg_fd_get(h3, &fd3), CS_OK);
	err = CS_OK;
	for (int i = 0; i < 100 && err == CS_OK; i++) {
		struct pollfd p = { .fd = fd3, .events = POLLIN };
		poll(&p, 1, 100);
		err = cpg_dispatch(h3, CS_DISPATCH_ALL);
	}
	CHECK(err == CS_ERR_BAD_HANDLE && seen.finalized_in_callback,
	      "finalize from a callback ends dispatch with CS_ERR_BAD_HANDLE (err %d, finalized %d, last \"%s\")",
	      err, seen.finalized_in_callback, seen.last_msg);
	EXPECT(cpg_dispatch(h3, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);

	/* A blocking dispatch in another thread ends when the handle is finalized. */
	cpg_handle_t h4;
	pthread_t thread;
	EXPECT(cpg_initialize(&h4, &cb), CS_OK);
	CHECK(pthread_create(&thread, NULL, blocking_dispatch, &h4) == 0, "dispatch thread started");
	usleep(200000);
	EXPECT(cpg_finalize(h4), CS_OK);
	pthread_join(thread, NULL);
	CHECK(blocking_result == CS_ERR_BAD_HANDLE,
	      "CS_DISPATCH_BLOCKING returns CS_ERR_BAD_HANDLE once another thread finalizes (%d)",
	      blocking_result);

	/* Leave, then finalize: the handle is dead. */
	EXPECT(cpg_leave(h, &group), CS_OK);
	found = 1;
	for (int i = 0; i < 100 && found; i++) {
		usleep(50000);
		cpg_dispatch(h, CS_DISPATCH_ALL);
		EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_ALL, NULL, &it), CS_OK);
		found = 0;
		while (cpg_iteration_next(it, &d) == CS_OK)
			found |= d.group.length == group.length &&
				 memcmp(d.group.value, GROUP, group.length) == 0 &&
				 d.nodeid == my_nodeid && d.pid == (uint32_t)getpid();
		cpg_iteration_finalize(it);
	}
	CHECK(!found, "after cpg_leave the group no longer lists this process");
	EXPECT(cpg_finalize(h), CS_OK);
	EXPECT(cpg_finalize(h), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_dispatch(h, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_mcast_joined(h, CPG_TYPE_AGREED, two, 2), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_join(h, &group), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_local_get(h, &nodeid), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_flow_control_state_get(h, &fc), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_zcb_alloc(h, 8, &zb), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_context_set(h, NULL), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_max_atomic_msgsize_get(h, &size), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_membership_get(h, &group, list, &n), CS_ERR_BAD_HANDLE);
	EXPECT(cpg_iteration_initialize(h, CPG_ITERATION_ALL, NULL, &it), CS_ERR_BAD_HANDLE);
	printf("%d passed, 0 failed\n", checks);
	return 0;
}
