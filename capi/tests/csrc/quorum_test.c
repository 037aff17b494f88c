/*
 * quorum_test: every function of libquorum.so.5, success and error paths, against a running
 * cluster. Built against corosync's installed <corosync/quorum.h> and linked with -lquorum,
 * run with rotor's libquorum first on LD_LIBRARY_PATH.
 *
 *   quorum_test set    on node 1 of a three-node cluster with votequorum as the provider;
 *                      halfway it prints "# pause: stop node 3", waits for a line on stdin,
 *                      and checks the notifications of the change
 *   quorum_test free   on a node without a quorum provider
 *
 * Prints one "ok - what" line per check; the first failed check prints "not ok - what" and
 * exits 1.
 */
#define _GNU_SOURCE
#include <corosync/quorum.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
		fflush(stdout);                                                          \
	} while (0)

#define EXPECT(call, want) CHECK((call) == (want), "%s == %s", #call, #want)

#define LIST_MAX 8

/* A node id list as a notification gave it. */
struct list {
	uint32_t n;
	uint32_t ids[LIST_MAX];
};

static void keep(struct list *l, uint32_t n, const uint32_t *ids)
{
	l->n = n;
	for (uint32_t i = 0; i < n && i < LIST_MAX; i++)
		l->ids[i] = ids[i];
}

/* Is `l` exactly the ids given (in order)? */
static int is(const struct list *l, int n, ...)
{
	uint32_t want[LIST_MAX];
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		want[i] = va_arg(ap, uint32_t);
	va_end(ap);
	if (l->n != (uint32_t)n)
		return 0;
	for (int i = 0; i < n; i++)
		if (l->ids[i] != want[i])
			return 0;
	return 1;
}

static struct {
	/* model v0 */
	int v0;
	quorum_handle_t v0_handle;
	uint32_t v0_quorate;
	uint64_t v0_seq;
	struct list v0_view;
	/* model v1 */
	int v1_quorum;
	uint32_t v1_quorate;
	struct quorum_ring_id v1_quorum_ring;
	struct list v1_members;
	int v1_nodelist;
	struct quorum_ring_id v1_nodelist_ring;
	struct list nl_members, nl_joined, nl_left;
	const void *v1_context;
	/* finalize from inside a callback */
	quorum_handle_t finalize_me;
	int finalized_in_callback;
} seen;

static void on_v0(quorum_handle_t h, uint32_t quorate, uint64_t seq, uint32_t n, uint32_t *view)
{
	seen.v0++;
	seen.v0_handle = h;
	seen.v0_quorate = quorate;
	seen.v0_seq = seq;
	keep(&seen.v0_view, n, view);
	if (h == seen.finalize_me)
		seen.finalized_in_callback = quorum_finalize(h) == CS_OK;
}

static void on_v1_quorum(quorum_handle_t h, uint32_t quorate, struct quorum_ring_id ring,
			 uint32_t n, const uint32_t *members)
{
	seen.v1_quorum++;
	seen.v1_quorate = quorate;
	seen.v1_quorum_ring = ring;
	keep(&seen.v1_members, n, members);
	quorum_context_get(h, &seen.v1_context);
}

static void on_v1_nodelist(quorum_handle_t h, struct quorum_ring_id ring, uint32_t n,
			   const uint32_t *members, uint32_t nj, const uint32_t *joined,
			   uint32_t nl, const uint32_t *left)
{
	seen.v1_nodelist++;
	seen.v1_nodelist_ring = ring;
	keep(&seen.nl_members, n, members);
	keep(&seen.nl_joined, nj, joined);
	keep(&seen.nl_left, nl, left);
	(void)h;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls the fds of `a` and `b` and dispatches both (CS_DISPATCH_ALL) until `*done` says so,
 * up to 20 s. */
static int pump(quorum_handle_t a, quorum_handle_t b, int (*done)(void))
{
	uint64_t deadline = now_ms() + 20000;
	while (!done() && now_ms() < deadline) {
		struct pollfd p[2] = { { .events = POLLIN }, { .events = POLLIN } };
		if (quorum_fd_get(a, &p[0].fd) != CS_OK || quorum_fd_get(b, &p[1].fd) != CS_OK)
			return 0;
		poll(p, 2, 100);
		if (quorum_dispatch(a, CS_DISPATCH_ALL) != CS_OK ||
		    quorum_dispatch(b, CS_DISPATCH_ALL) != CS_OK)
			return 0;
	}
	return done();
}

static int readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static int v1_both_seen(void)
{
	return seen.v1_nodelist >= 1 && seen.v1_quorum >= 1;
}

/* After node 3 stopped: what both models say last is the two-node membership. */
static int node3_gone(void)
{
	return is(&seen.nl_members, 2, 1, 2) && is(&seen.v1_members, 2, 1, 2) &&
	       is(&seen.v0_view, 2, 1, 2);
}

static cs_error_t blocking_result = CS_OK;

static void *blocking_dispatch(void *arg)
{
	blocking_result = quorum_dispatch(*(quorum_handle_t *)arg, CS_DISPATCH_BLOCKING);
	return NULL;
}

static void bad_handle(quorum_handle_t h, const char *what)
{
	int quorate, fd;
	const void *ctx;
	CHECK(quorum_finalize(h) == CS_ERR_BAD_HANDLE, "%s: quorum_finalize", what);
	CHECK(quorum_getquorate(h, &quorate) == CS_ERR_BAD_HANDLE, "%s: quorum_getquorate", what);
	CHECK(quorum_trackstart(h, CS_TRACK_CURRENT) == CS_ERR_BAD_HANDLE, "%s: quorum_trackstart", what);
	CHECK(quorum_trackstop(h) == CS_ERR_BAD_HANDLE, "%s: quorum_trackstop", what);
	CHECK(quorum_fd_get(h, &fd) == CS_ERR_BAD_HANDLE, "%s: quorum_fd_get", what);
	CHECK(quorum_context_get(h, &ctx) == CS_ERR_BAD_HANDLE, "%s: quorum_context_get", what);
	CHECK(quorum_context_set(h, &ctx) == CS_ERR_BAD_HANDLE, "%s: quorum_context_set", what);
	CHECK(quorum_dispatch(h, CS_DISPATCH_ALL) == CS_ERR_BAD_HANDLE, "%s: quorum_dispatch ALL", what);
	CHECK(quorum_dispatch(h, CS_DISPATCH_BLOCKING) == CS_ERR_BAD_HANDLE,
	      "%s: quorum_dispatch BLOCKING", what);
	/* The flags are checked before the handle, as corosync does. */
	CHECK(quorum_dispatch(h, 99) == CS_ERR_INVALID_PARAM, "%s: quorum_dispatch(99)", what);
}

static int free_mode(void)
{
	quorum_handle_t h;
	uint32_t type = 99;
	int quorate = 0;
	quorum_callbacks_t cb = { .quorum_notify_fn = on_v0 };

	EXPECT(quorum_initialize(&h, &cb, &type), CS_OK);
	CHECK(type == QUORUM_FREE, "without a provider the quorum type is QUORUM_FREE (%u)", type);
	EXPECT(quorum_getquorate(h, &quorate), CS_OK);
	CHECK(quorate == 1, "without a provider the node is quorate");
	EXPECT(quorum_trackstart(h, CS_TRACK_CURRENT), CS_OK);
	EXPECT(quorum_dispatch(h, CS_DISPATCH_ONE), CS_OK);
	/* corosync's quorum service without a provider never gets a view list: empty. */
	CHECK(seen.v0 == 1 && seen.v0_quorate == 1 && seen.v0_view.n == 0,
	      "the current state: quorate, an empty view list (%d, %u, %u members)", seen.v0,
	      seen.v0_quorate, seen.v0_view.n);
	EXPECT(quorum_finalize(h), CS_OK);
	type = 99;
	EXPECT(quorum_model_initialize(&h, QUORUM_MODEL_V1, NULL, &type, NULL), CS_OK);
	CHECK(type == QUORUM_FREE, "model v1 without a provider: QUORUM_FREE (%u)", type);
	EXPECT(quorum_finalize(h), CS_OK);
	printf("%d passed, 0 failed\n", checks);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2 || (strcmp(argv[1], "set") != 0 && strcmp(argv[1], "free") != 0)) {
		fprintf(stderr, "usage: quorum_test set|free\n");
		return 2;
	}
	if (strcmp(argv[1], "free") == 0)
		return free_mode();

	quorum_handle_t h0, h1, h;
	uint32_t type;
	int quorate, fd, marker;
	const void *ctx;
	quorum_callbacks_t cb = { .quorum_notify_fn = on_v0 };
	quorum_model_v1_data_t v1 = {
		.model = QUORUM_MODEL_V1,
		.quorum_notify_fn = on_v1_quorum,
		.nodelist_notify_fn = on_v1_nodelist,
	};

	/* Handles that never existed. */
	bad_handle(0, "handle 0");
	bad_handle(0x123456789ULL, "a handle never issued");

	/* Initialization. */
	EXPECT(quorum_initialize(NULL, &cb, &type), CS_ERR_INVALID_PARAM);
	EXPECT(quorum_model_initialize(&h, 2, NULL, &type, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(quorum_model_initialize(NULL, QUORUM_MODEL_V1, (quorum_model_data_t *)&v1, &type, NULL),
	       CS_ERR_INVALID_PARAM);
	/* NULL callbacks and type: a handle that runs no callback. */
	EXPECT(quorum_initialize(&h, NULL, NULL), CS_OK);
	EXPECT(quorum_trackstart(h, CS_TRACK_CURRENT), CS_OK);
	EXPECT(quorum_dispatch(h, CS_DISPATCH_ONE), CS_OK);
	CHECK(seen.v0 == 0, "a handle without callbacks runs none");
	EXPECT(quorum_finalize(h), CS_OK);

	type = 99;
	EXPECT(quorum_initialize(&h0, &cb, &type), CS_OK);
	CHECK(type == QUORUM_SET, "votequorum decides: QUORUM_SET (%u)", type);
	EXPECT(quorum_getquorate(h0, &quorate), CS_OK);
	CHECK(quorate == 1, "three of three nodes are quorate");
	EXPECT(quorum_getquorate(h0, NULL), CS_ERR_INVALID_PARAM);

	/* Context: NULL after quorum_initialize, then what was set. */
	EXPECT(quorum_context_get(h0, &ctx), CS_OK);
	CHECK(ctx == NULL, "the context starts NULL");
	EXPECT(quorum_context_set(h0, &marker), CS_OK);
	EXPECT(quorum_context_get(h0, &ctx), CS_OK);
	CHECK(ctx == &marker, "quorum_context_get returns what was set");
	EXPECT(quorum_context_get(h0, NULL), CS_ERR_INVALID_PARAM);

	/* Dispatch with nothing waiting, and the fd. */
	EXPECT(quorum_fd_get(h0, &fd), CS_OK);
	CHECK(fd >= 0, "quorum_fd_get gives a descriptor (%d)", fd);
	EXPECT(quorum_fd_get(h0, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(quorum_dispatch(h0, 99), CS_ERR_INVALID_PARAM);
	EXPECT(quorum_dispatch(h0, CS_DISPATCH_ONE_NONBLOCKING), CS_ERR_TRY_AGAIN);
	EXPECT(quorum_dispatch(h0, CS_DISPATCH_ALL), CS_OK);
	CHECK(!readable(fd, 0), "the fd is not readable while nothing waits");

	/* The current state, once. */
	EXPECT(quorum_trackstart(h0, CS_TRACK_CURRENT), CS_OK);
	CHECK(readable(fd, 5000), "the fd is readable once the notification waits");
	CHECK(seen.v0 == 0, "no callback outside dispatch");
	EXPECT(quorum_dispatch(h0, CS_DISPATCH_ONE), CS_OK);
	CHECK(seen.v0 == 1 && seen.v0_handle == h0 && seen.v0_quorate == 1 && seen.v0_seq > 0 &&
		      is(&seen.v0_view, 3, 1, 2, 3),
	      "model v0: quorate, ring sequence %llu, members 1 2 3 (%u members)",
	      (unsigned long long)seen.v0_seq, seen.v0_view.n);
	EXPECT(quorum_dispatch(h0, CS_DISPATCH_ONE_NONBLOCKING), CS_ERR_TRY_AGAIN);
	CHECK(!readable(fd, 0), "the fd is not readable once dispatched");
	EXPECT(quorum_trackstop(h0), CS_OK);

	/* Tracking changes: the current state first; a second trackstart is CS_ERR_EXIST (and,
	 * as corosync's, still sends the current state). */
	EXPECT(quorum_trackstart(h0, CS_TRACK_CHANGES), CS_OK);
	EXPECT(quorum_dispatch(h0, CS_DISPATCH_ONE), CS_OK);
	CHECK(seen.v0 == 2, "CS_TRACK_CHANGES sends the current state");
	EXPECT(quorum_trackstart(h0, CS_TRACK_CHANGES), CS_ERR_EXIST);
	EXPECT(quorum_dispatch(h0, CS_DISPATCH_ALL), CS_OK);
	CHECK(seen.v0 == 3, "and so does the refused one");
	uint64_t seq_before = seen.v0_seq;

	/* Model v1: the nodelist, then the quorum with the ring id; the context given. */
	type = 99;
	int v1_ctx;
	EXPECT(quorum_model_initialize(&h1, QUORUM_MODEL_V1, (quorum_model_data_t *)&v1, &type,
				       &v1_ctx),
	       CS_OK);
	CHECK(type == QUORUM_SET, "model v1: QUORUM_SET");
	EXPECT(quorum_context_get(h1, &ctx), CS_OK);
	CHECK(ctx == &v1_ctx, "quorum_model_initialize's context");
	EXPECT(quorum_trackstart(h1, CS_TRACK_CHANGES), CS_OK);
	CHECK(pump(h0, h1, v1_both_seen), "model v1 notifications arrive");
	CHECK(seen.v1_nodelist == 1 && is(&seen.nl_members, 3, 1, 2, 3) && seen.nl_joined.n == 0 &&
		      seen.nl_left.n == 0,
	      "model v1 nodelist: members 1 2 3, none joined or left");
	CHECK(seen.v1_quorum == 1 && seen.v1_quorate == 1 && is(&seen.v1_members, 3, 1, 2, 3),
	      "model v1 quorum: quorate, members 1 2 3");
	CHECK(seen.v1_quorum_ring.nodeid >= 1 && seen.v1_quorum_ring.nodeid <= 3 &&
		      seen.v1_quorum_ring.seq == seq_before,
	      "model v1's ring id (%u, %llu) has model v0's sequence",
	      seen.v1_quorum_ring.nodeid, (unsigned long long)seen.v1_quorum_ring.seq);
	CHECK(seen.v1_nodelist_ring.nodeid == seen.v1_quorum_ring.nodeid &&
		      seen.v1_nodelist_ring.seq == seen.v1_quorum_ring.seq,
	      "the nodelist's ring is the quorum's");
	CHECK(seen.v1_context == &v1_ctx, "the context is there inside the callback");
	printf("# ring %u/%llu\n", seen.v1_quorum_ring.nodeid,
	       (unsigned long long)seen.v1_quorum_ring.seq);

	/* A node leaves: both handles hear of it. */
	printf("# pause: stop node 3\n");
	fflush(stdout);
	char line[16];
	CHECK(fgets(line, sizeof line, stdin) != NULL, "node 3 stopped");
	CHECK(pump(h0, h1, node3_gone), "both models report the two-node membership");
	CHECK(seen.v0_quorate == 1 && seen.v0_seq > seq_before,
	      "model v0: still quorate, a newer ring (%llu)", (unsigned long long)seen.v0_seq);
	CHECK(seen.v1_quorate == 1 && seen.v1_quorum_ring.seq == seen.v0_seq,
	      "model v1: still quorate, the same ring");
	CHECK(is(&seen.nl_left, 1, 3) && seen.nl_joined.n == 0,
	      "model v1 nodelist: node 3 left (%u left, %u joined)", seen.nl_left.n,
	      seen.nl_joined.n);
	EXPECT(quorum_getquorate(h0, &quorate), CS_OK);
	CHECK(quorate == 1, "two of three nodes are quorate");
	EXPECT(quorum_trackstop(h0), CS_OK);
	EXPECT(quorum_trackstop(h1), CS_OK);
	EXPECT(quorum_finalize(h1), CS_OK);

	/* Finalize from inside a callback: dispatch says CS_ERR_BAD_HANDLE. */
	quorum_handle_t hf;
	EXPECT(quorum_initialize(&hf, &cb, NULL), CS_OK);
	seen.finalize_me = hf;
	EXPECT(quorum_trackstart(hf, CS_TRACK_CURRENT), CS_OK);
	EXPECT(quorum_dispatch(hf, CS_DISPATCH_BLOCKING), CS_ERR_BAD_HANDLE);
	CHECK(seen.finalized_in_callback, "quorum_finalize inside the callback succeeded");
	bad_handle(hf, "finalized in a callback");

	/* A blocking dispatch in another thread ends when the handle is finalized. */
	quorum_handle_t hb;
	pthread_t thread;
	EXPECT(quorum_initialize(&hb, &cb, NULL), CS_OK);
	CHECK(pthread_create(&thread, NULL, blocking_dispatch, &hb) == 0, "dispatch thread started");
	usleep(200000);
	EXPECT(quorum_finalize(hb), CS_OK);
	pthread_join(thread, NULL);
	CHECK(blocking_result == CS_ERR_BAD_HANDLE,
	      "CS_DISPATCH_BLOCKING returns CS_ERR_BAD_HANDLE once another thread finalizes (%d)",
	      blocking_result);

	/* After finalize: every function refuses the handle. */
	EXPECT(quorum_finalize(h0), CS_OK);
	bad_handle(h0, "after finalize");
	printf("%d passed, 0 failed\n", checks);
	return 0;
}
