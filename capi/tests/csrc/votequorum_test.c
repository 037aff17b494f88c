/*
 * votequorum_test: every function of libvotequorum.so.8, success and error paths, against a
 * running cluster. Built against corosync's installed <corosync/votequorum.h> and linked
 * with -lvotequorum, run with rotor's libvotequorum first on LD_LIBRARY_PATH.
 *
 *   votequorum_test    on node 1 of a three-node cluster with votequorum and a quorum device
 *                      configured (quorum.device.model net: 2 votes, expected votes 5);
 *                      halfway it prints "# pause: stop node 3", waits for a line on stdin,
 *                      and checks the notifications of the change
 *
 * Prints one "ok - what" line per check; the first failed check prints "not ok - what" and
 * exits 1.
 */
#define _GNU_SOURCE
#include <corosync/votequorum.h>
#include <poll.h>
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
#define CONTEXT 0x5eed0042ULL

static struct {
	int quorum;
	votequorum_handle_t quorum_handle;
	uint64_t quorum_context;
	uint32_t quorate;
	uint32_t nodes_n;
	votequorum_node_t nodes[LIST_MAX];
	int nodelist;
	uint64_t nodelist_context;
	votequorum_ring_id_t ring;
	uint32_t nodelist_n;
	uint32_t nodelist_ids[LIST_MAX];
	int expected;
	uint64_t expected_context;
	uint32_t expected_votes;
	uint32_t expected_history[LIST_MAX];
	votequorum_handle_t finalize_me;
	int finalized_in_callback;
} seen;

static void on_quorum(votequorum_handle_t h, uint64_t context, uint32_t quorate, uint32_t n,
		      votequorum_node_t nodes[])
{
	seen.quorum++;
	seen.quorum_handle = h;
	seen.quorum_context = context;
	seen.quorate = quorate;
	seen.nodes_n = n;
	for (uint32_t i = 0; i < n && i < LIST_MAX; i++)
		seen.nodes[i] = nodes[i];
	if (h == seen.finalize_me)
		seen.finalized_in_callback = votequorum_finalize(h) == CS_OK;
}

static void on_nodelist(votequorum_handle_t h, uint64_t context, votequorum_ring_id_t ring,
			uint32_t n, uint32_t ids[])
{
	seen.nodelist++;
	seen.nodelist_context = context;
	seen.ring = ring;
	seen.nodelist_n = n;
	for (uint32_t i = 0; i < n && i < LIST_MAX; i++)
		seen.nodelist_ids[i] = ids[i];
	(void)h;
}

static void on_expected(votequorum_handle_t h, uint64_t context, uint32_t expected_votes)
{
	if (seen.expected < LIST_MAX)
		seen.expected_history[seen.expected] = expected_votes;
	seen.expected++;
	seen.expected_context = context;
	seen.expected_votes = expected_votes;
	(void)h;
}

/* The state the last quorum notification gave node `id` (-1: not listed). */
static int state_of(uint32_t id)
{
	for (uint32_t i = 0; i < seen.nodes_n && i < LIST_MAX; i++)
		if (seen.nodes[i].nodeid == id)
			return (int)seen.nodes[i].state;
	return -1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls the fd and dispatches (CS_DISPATCH_ALL) until `*done` says so, up to 20 s. */
static int pump(votequorum_handle_t h, int (*done)(void))
{
	uint64_t deadline = now_ms() + 20000;
	while (!done() && now_ms() < deadline) {
		struct pollfd p = { .events = POLLIN };
		if (votequorum_fd_get(h, &p.fd) != CS_OK)
			return 0;
		poll(&p, 1, 100);
		if (votequorum_dispatch(h, CS_DISPATCH_ALL) != CS_OK)
			return 0;
	}
	return done();
}

/* getinfo of `node` until `ok(info)` says so (changes are ordered in the cluster first), up to
 * 20 s, dispatching meanwhile. */
static int info_until(votequorum_handle_t h, unsigned int node, struct votequorum_info *info,
		      int (*ok)(const struct votequorum_info *))
{
	uint64_t deadline = now_ms() + 20000;
	for (;;) {
		if (votequorum_getinfo(h, node, info) == CS_OK && ok(info))
			return 1;
		if (now_ms() > deadline)
			return 0;
		votequorum_dispatch(h, CS_DISPATCH_ALL);
		usleep(50000);
	}
}

/* A device poll for the ring the last nodelist notification gave; a ring changed again in the
 * meantime (CS_ERR_MESSAGE_ERROR) is polled for once its notification arrives, up to 20 s. */
static cs_error_t poll_current(votequorum_handle_t h, const char *name, unsigned int cast_vote)
{
	uint64_t deadline = now_ms() + 20000;
	for (;;) {
		votequorum_dispatch(h, CS_DISPATCH_ALL);
		cs_error_t err = votequorum_qdevice_poll(h, name, cast_vote, seen.ring);
		if (err != CS_ERR_MESSAGE_ERROR || now_ms() > deadline)
			return err;
		usleep(50000);
	}
}

static int readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static int both_seen(void)
{
	return seen.nodelist >= 1 && seen.quorum >= 1;
}

/* The expected votes notifications went to 4, then back up to 5. */
static int expected_4_then_5(void)
{
	int at4 = -1;
	for (int i = 0; i < seen.expected && i < LIST_MAX; i++) {
		if (seen.expected_history[i] == 4 && at4 < 0)
			at4 = i;
		if (seen.expected_history[i] == 5 && at4 >= 0)
			return 1;
	}
	return 0;
}

static int two_nodes_listed(void)
{
	return seen.nodelist_n == 2;
}

static int device_listed(void)
{
	return seen.nodes_n == 4 && state_of(VOTEQUORUM_QDEVICE_NODEID) == 0;
}

static int node3_dead_inquorate(void)
{
	return seen.nodelist_n == 2 && seen.quorate == 0 &&
	       state_of(3) == VOTEQUORUM_NODESTATE_DEAD && state_of(VOTEQUORUM_QDEVICE_NODEID) == 0;
}

static int quorate(void)
{
	return seen.quorate == 1;
}

static int inquorate(void)
{
	return seen.quorate == 0;
}

static int node2_two_votes(const struct votequorum_info *i)
{
	return i->node_votes == 2;
}

static int device_votes(const struct votequorum_info *i)
{
	return i->total_votes == 5;
}

static int renamed(const struct votequorum_info *i)
{
	return strcmp(i->qdevice_name, "Qdevice2") == 0;
}

static cs_error_t blocking_result = CS_OK;

static void *blocking_dispatch(void *arg)
{
	blocking_result = votequorum_dispatch(*(votequorum_handle_t *)arg, CS_DISPATCH_BLOCKING);
	return NULL;
}

static void bad_handle(votequorum_handle_t h, const char *what)
{
	struct votequorum_info info;
	void *ctx;
	int fd;
	votequorum_ring_id_t ring = { 1, 1 };
#define BAD(call) CHECK((call) == CS_ERR_BAD_HANDLE, "%s: %s", what, #call)
	BAD(votequorum_finalize(h));
	BAD(votequorum_getinfo(h, 0, &info));
	BAD(votequorum_setexpected(h, 3));
	BAD(votequorum_setvotes(h, 0, 1));
	BAD(votequorum_trackstart(h, 0, CS_TRACK_CURRENT));
	BAD(votequorum_trackstop(h));
	BAD(votequorum_context_get(h, &ctx));
	BAD(votequorum_context_set(h, &ctx));
	BAD(votequorum_fd_get(h, &fd));
	BAD(votequorum_dispatch(h, CS_DISPATCH_ALL));
	BAD(votequorum_dispatch(h, CS_DISPATCH_BLOCKING));
	BAD(votequorum_qdevice_register(h, "Qdevice"));
	BAD(votequorum_qdevice_unregister(h, "Qdevice"));
	BAD(votequorum_qdevice_update(h, "Qdevice", "Other"));
	BAD(votequorum_qdevice_poll(h, "Qdevice", 1, ring));
	BAD(votequorum_qdevice_master_wins(h, "Qdevice", 1));
#undef BAD
	/* The flags are checked before the handle, as corosync does. */
	CHECK(votequorum_dispatch(h, 99) == CS_ERR_INVALID_PARAM, "%s: votequorum_dispatch(99)",
	      what);
}

int main(int argc, char **argv)
{
	if (argc != 1) {
		fprintf(stderr, "usage: votequorum_test\n");
		return 2;
	}
	(void)argv;
	votequorum_handle_t h;
	struct votequorum_info info;
	void *ctx;
	int marker, fd;
	votequorum_callbacks_t cb = {
		.votequorum_quorum_notify_fn = on_quorum,
		.votequorum_expectedvotes_notify_fn = on_expected,
		.votequorum_nodelist_notify_fn = on_nodelist,
	};

	/* Handles that never existed. */
	bad_handle(0, "handle 0");
	bad_handle(0x123456789ULL, "a handle never issued");

	/* Initialization; NULL callbacks: a handle that runs none. */
	EXPECT(votequorum_initialize(NULL, &cb), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_initialize(&h, NULL), CS_OK);
	EXPECT(votequorum_trackstart(h, 1, CS_TRACK_CURRENT), CS_OK);
	EXPECT(votequorum_dispatch(h, CS_DISPATCH_ONE), CS_OK);
	EXPECT(votequorum_dispatch(h, CS_DISPATCH_ONE), CS_OK);
	CHECK(seen.quorum == 0 && seen.nodelist == 0, "a handle without callbacks runs none");
	EXPECT(votequorum_finalize(h), CS_OK);

	EXPECT(votequorum_initialize(&h, &cb), CS_OK);
	EXPECT(votequorum_context_get(h, &ctx), CS_OK);
	CHECK(ctx == NULL, "the context starts NULL");
	EXPECT(votequorum_context_set(h, &marker), CS_OK);
	EXPECT(votequorum_context_get(h, &ctx), CS_OK);
	CHECK(ctx == &marker, "votequorum_context_get returns what was set");
	EXPECT(votequorum_context_get(h, NULL), CS_ERR_INVALID_PARAM);

	/* Dispatch with nothing waiting, and the fd. */
	EXPECT(votequorum_fd_get(h, &fd), CS_OK);
	CHECK(fd >= 0, "votequorum_fd_get gives a descriptor (%d)", fd);
	EXPECT(votequorum_fd_get(h, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_dispatch(h, 99), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_dispatch(h, CS_DISPATCH_ONE_NONBLOCKING), CS_ERR_TRY_AGAIN);
	EXPECT(votequorum_dispatch(h, CS_DISPATCH_ALL), CS_OK);
	CHECK(!readable(fd, 0), "the fd is not readable while nothing waits");

	/* getinfo: this node (0 and its id), another, one that does not exist. */
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	printf("# node %u: state %u votes %u expected %u highest %u total %u quorum %u flags %#x "
	       "qdevice votes %u name '%s'\n",
	       info.node_id, info.node_state, info.node_votes, info.node_expected_votes,
	       info.highest_expected, info.total_votes, info.quorum, info.flags,
	       info.qdevice_votes, info.qdevice_name);
	CHECK(info.node_id == 1 && info.node_state == VOTEQUORUM_NODESTATE_MEMBER &&
		      info.node_votes == 1,
	      "getinfo(0) is this node, a member with one vote");
	CHECK(info.node_expected_votes == 5 && info.highest_expected == 5 && info.total_votes == 3 &&
		      info.quorum == 3,
	      "three nodes and a device of two votes: expected 5, total 3, quorum 3");
	CHECK(info.flags & VOTEQUORUM_INFO_QUORATE, "quorate");
	CHECK(!(info.flags & VOTEQUORUM_INFO_QDEVICE_REGISTERED) && info.qdevice_name[0] == 0,
	      "no device registered, no device name");
	struct votequorum_info two;
	EXPECT(votequorum_getinfo(h, 2, &two), CS_OK);
	CHECK(two.node_id == 2 && two.node_state == VOTEQUORUM_NODESTATE_MEMBER &&
		      two.node_votes == 1,
	      "getinfo(2): node 2, a member with one vote");
	EXPECT(votequorum_getinfo(h, 1, &two), CS_OK);
	CHECK(two.node_id == 1, "getinfo(1) is this node too");
	EXPECT(votequorum_getinfo(h, 99, &two), CS_ERR_NOT_EXIST);
	EXPECT(votequorum_getinfo(h, 0, NULL), CS_ERR_INVALID_PARAM);

	/* Tracking: the nodelist and the quorum, with the context given. */
	EXPECT(votequorum_trackstart(h, CONTEXT, CS_TRACK_CHANGES), CS_OK);
	CHECK(readable(fd, 5000), "the fd is readable once notifications wait");
	CHECK(seen.quorum == 0, "no callback outside dispatch");
	CHECK(pump(h, both_seen), "the current state arrives");
	CHECK(seen.nodelist_context == CONTEXT && seen.nodelist_n == 3 &&
		      seen.nodelist_ids[0] == 1 && seen.nodelist_ids[1] == 2 &&
		      seen.nodelist_ids[2] == 3 && seen.ring.seq > 0 && seen.ring.nodeid >= 1 &&
		      seen.ring.nodeid <= 3,
	      "nodelist: context, ring (%u, %llu), nodes 1 2 3", seen.ring.nodeid,
	      (unsigned long long)seen.ring.seq);
	CHECK(seen.quorum_handle == h && seen.quorum_context == CONTEXT && seen.quorate == 1 &&
		      seen.nodes_n == 3 && state_of(1) == VOTEQUORUM_NODESTATE_MEMBER &&
		      state_of(2) == VOTEQUORUM_NODESTATE_MEMBER &&
		      state_of(3) == VOTEQUORUM_NODESTATE_MEMBER,
	      "quorum: context, quorate, three members");
	EXPECT(votequorum_trackstart(h, CONTEXT, CS_TRACK_CHANGES), CS_ERR_EXIST);
	EXPECT(votequorum_dispatch(h, CS_DISPATCH_ALL), CS_OK);
	CHECK(!readable(fd, 0), "the fd is not readable once dispatched");

	/* Expected votes: refused below the votes present or where quorum would be lost. */
	EXPECT(votequorum_setexpected(h, 2), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_setexpected(h, 6), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_setexpected(h, 0), CS_ERR_INVALID_PARAM);
	/* Accepted, and ordered; then, as corosync's recalculate_quorum does, expected votes go
	 * back up to the votes of the nodes and the configured device (3 + 2). */
	EXPECT(votequorum_setexpected(h, 4), CS_OK);
	CHECK(pump(h, expected_4_then_5), "the expected votes notifications: 4, then 5");
	CHECK(seen.expected_context == CONTEXT, "with the context");
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK(info.node_expected_votes == 5 && info.quorum == 3, "getinfo: expected 5, quorum 3");

	/* Votes of a node: 0 is this node; an unknown node, or votes that would leave quorum
	 * above the votes present (2 of a quorum of 3), are refused. */
	EXPECT(votequorum_setvotes(h, 0, 1), CS_OK);
	EXPECT(votequorum_setvotes(h, 99, 1), CS_ERR_NAME_NOT_FOUND);
	EXPECT(votequorum_setvotes(h, 2, 0), CS_ERR_INVALID_PARAM);

	/* A quorum device: names checked as corosync checks them. */
	char long_name[VOTEQUORUM_QDEVICE_MAX_NAME_LEN + 1];
	memset(long_name, 'q', VOTEQUORUM_QDEVICE_MAX_NAME_LEN);
	long_name[VOTEQUORUM_QDEVICE_MAX_NAME_LEN] = 0;
	votequorum_ring_id_t stale = { 9, 1 };
	EXPECT(votequorum_qdevice_register(h, ""), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_register(h, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_register(h, long_name), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_unregister(h, "Qdevice"), CS_ERR_NOT_EXIST);
	EXPECT(votequorum_qdevice_poll(h, "Qdevice", 1, seen.ring), CS_ERR_NOT_EXIST);
	EXPECT(votequorum_qdevice_master_wins(h, "Qdevice", 1), CS_ERR_NOT_EXIST);
	EXPECT(votequorum_qdevice_update(h, "Qdevice", "Qdevice2"), CS_ERR_NOT_EXIST);
	EXPECT(votequorum_qdevice_register(h, "Qdevice"), CS_OK);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK((info.flags & VOTEQUORUM_INFO_QDEVICE_REGISTERED) &&
		      strcmp(info.qdevice_name, "Qdevice") == 0,
	      "registered, named Qdevice ('%s')", info.qdevice_name);
	EXPECT(votequorum_qdevice_register(h, "Other"), CS_ERR_EXIST);
	EXPECT(votequorum_qdevice_register(h, "Qdevice"), CS_OK);

	/* Polls: for the current ring, under its name. */
	EXPECT(votequorum_qdevice_poll(h, "Qdevice", 1, stale), CS_ERR_MESSAGE_ERROR);
	EXPECT(votequorum_qdevice_poll(h, "Other", 1, seen.ring), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_poll(h, "", 1, seen.ring), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_poll(h, "Qdevice", 1, seen.ring), CS_OK);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK((info.flags & VOTEQUORUM_INFO_QDEVICE_ALIVE) &&
		      (info.flags & VOTEQUORUM_INFO_QDEVICE_CAST_VOTE),
	      "alive and casting its vote (flags %#x)", info.flags);
	CHECK(info_until(h, 0, &info, device_votes), "the device's two votes count: total 5");
	/* The current state, on a second handle: the device is listed as node 0. */
	votequorum_handle_t h2;
	EXPECT(votequorum_initialize(&h2, &cb), CS_OK);
	EXPECT(votequorum_trackstart(h2, 7, CS_TRACK_CURRENT), CS_OK);
	CHECK(pump(h2, device_listed) && seen.quorum_handle == h2 && seen.quorum_context == 7,
	      "the quorum notification lists the device as node 0 (%u nodes)", seen.nodes_n);
	EXPECT(votequorum_finalize(h2), CS_OK);
	EXPECT(votequorum_qdevice_poll(h, "Qdevice", 0, seen.ring), CS_OK);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK(!(info.flags & VOTEQUORUM_INFO_QDEVICE_CAST_VOTE), "a poll without the vote");

	EXPECT(votequorum_qdevice_master_wins(h, "Other", 1), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_master_wins(h, "Qdevice", 1), CS_OK);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK(info.flags & VOTEQUORUM_INFO_QDEVICE_MASTER_WINS, "master wins");
	EXPECT(votequorum_qdevice_master_wins(h, "Qdevice", 0), CS_OK);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK(!(info.flags & VOTEQUORUM_INFO_QDEVICE_MASTER_WINS), "master wins no more");

	EXPECT(votequorum_qdevice_update(h, "Qdevice", ""), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_update(h, NULL, "Qdevice2"), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_update(h, "Other", "Qdevice2"), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_update(h, "Qdevice", "Qdevice2"), CS_OK);
	CHECK(info_until(h, 0, &info, renamed), "renamed Qdevice2");
	EXPECT(votequorum_qdevice_unregister(h, "Qdevice"), CS_ERR_INVALID_PARAM);
	EXPECT(votequorum_qdevice_unregister(h, "Qdevice2"), CS_OK);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK(!(info.flags & (VOTEQUORUM_INFO_QDEVICE_REGISTERED | VOTEQUORUM_INFO_QDEVICE_ALIVE |
			      VOTEQUORUM_INFO_QDEVICE_CAST_VOTE)),
	      "unregistered (flags %#x)", info.flags);
	EXPECT(votequorum_qdevice_unregister(h, "Qdevice2"), CS_ERR_NOT_EXIST);

	/* The device again, alive but not voting. */
	EXPECT(votequorum_qdevice_register(h, "Qdevice"), CS_OK);
	EXPECT(votequorum_qdevice_poll(h, "Qdevice", 0, seen.ring), CS_OK);
	votequorum_ring_id_t before = seen.ring;

	/* A node leaves: two of five votes are not quorate, the device's vote makes four. */
	printf("# pause: stop node 3\n");
	fflush(stdout);
	char line[16];
	CHECK(fgets(line, sizeof line, stdin) != NULL, "node 3 stopped");
	CHECK(pump(h, two_nodes_listed), "nodelist: nodes 1 and 2");
	CHECK(seen.ring.seq > before.seq, "in a newer ring (%u, %llu)", seen.ring.nodeid,
	      (unsigned long long)seen.ring.seq);
	EXPECT(votequorum_qdevice_poll(h, "Qdevice", 0, before), CS_ERR_MESSAGE_ERROR);
	EXPECT(poll_current(h, "Qdevice", 0), CS_OK);
	CHECK(pump(h, node3_dead_inquorate),
	      "quorum lost: nodes 1 and 2 members, node 3 dead, the device (%u nodes, quorate %u)",
	      seen.nodes_n, seen.quorate);
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK(!(info.flags & VOTEQUORUM_INFO_QUORATE) && info.total_votes == 2,
	      "getinfo: not quorate, total 2");
	EXPECT(votequorum_getinfo(h, 3, &two), CS_OK);
	CHECK(two.node_state == VOTEQUORUM_NODESTATE_DEAD, "getinfo(3): dead");
	EXPECT(poll_current(h, "Qdevice", 1), CS_OK);
	CHECK(pump(h, quorate), "the device votes: quorate again");
	EXPECT(votequorum_getinfo(h, 0, &info), CS_OK);
	CHECK((info.flags & VOTEQUORUM_INFO_QUORATE) && info.total_votes == 4,
	      "getinfo: quorate, total 4 (%u)", info.total_votes);
	EXPECT(votequorum_qdevice_unregister(h, "Qdevice"), CS_OK);
	CHECK(pump(h, inquorate), "the device gone: not quorate");

	/* A second vote for node 2 makes three of five. */
	EXPECT(votequorum_setvotes(h, 2, 2), CS_OK);
	CHECK(info_until(h, 2, &two, node2_two_votes), "node 2 has two votes");
	CHECK(pump(h, quorate), "quorate again");
	EXPECT(votequorum_trackstop(h), CS_OK);
	EXPECT(votequorum_trackstop(h), CS_ERR_NOT_EXIST);

	/* Finalize from inside a callback: dispatch says CS_ERR_BAD_HANDLE. */
	votequorum_handle_t hf;
	EXPECT(votequorum_initialize(&hf, &cb), CS_OK);
	seen.finalize_me = hf;
	EXPECT(votequorum_trackstart(hf, 0, CS_TRACK_CURRENT), CS_OK);
	EXPECT(votequorum_dispatch(hf, CS_DISPATCH_BLOCKING), CS_ERR_BAD_HANDLE);
	CHECK(seen.finalized_in_callback, "votequorum_finalize inside the callback succeeded");
	bad_handle(hf, "finalized in a callback");

	/* A blocking dispatch in another thread ends when the handle is finalized. */
	votequorum_handle_t hb;
	pthread_t thread;
	EXPECT(votequorum_initialize(&hb, &cb), CS_OK);
	CHECK(pthread_create(&thread, NULL, blocking_dispatch, &hb) == 0, "dispatch thread started");
	usleep(200000);
	EXPECT(votequorum_finalize(hb), CS_OK);
	pthread_join(thread, NULL);
	CHECK(blocking_result == CS_ERR_BAD_HANDLE,
	      "CS_DISPATCH_BLOCKING returns CS_ERR_BAD_HANDLE once another thread finalizes (%d)",
	      blocking_result);

	/* After finalize: every function refuses the handle. */
	EXPECT(votequorum_finalize(h), CS_OK);
	bad_handle(h, "after finalize");
	printf("%d passed, 0 failed\n", checks);
	return 0;
}
