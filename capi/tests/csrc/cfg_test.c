/*
 * cfg_test: every function of libcfg.so.7, success and error paths, on node 3 of a running
 * three-node cluster (127.0.0.1-3). Built against corosync's installed <corosync/cfg.h> and
 * linked with -lcfg, run with rotor's libcfg first on LD_LIBRARY_PATH. Its last step shuts
 * node 3 down (a shutdown request its own tracking handle agrees to).
 *
 * Prints one "ok - what" line per check; the first failed check prints "not ok - what" and
 * exits 1.
 */
#define _GNU_SOURCE
#include <corosync/cfg.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* What the shutdown callback saw, and how it answers. */
static struct {
	pthread_mutex_t lock;
	int calls;
	corosync_cfg_handle_t handle;
	corosync_cfg_shutdown_flags_t flags;
	corosync_cfg_shutdown_reply_flags_t answer;
	int finalize_inside;
	cs_error_t reply_result;
	cs_error_t finalize_result;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void shutdown_cb(corosync_cfg_handle_t handle, corosync_cfg_shutdown_flags_t flags)
{
	pthread_mutex_lock(&seen.lock);
	seen.calls++;
	seen.handle = handle;
	seen.flags = flags;
	corosync_cfg_shutdown_reply_flags_t answer = seen.answer;
	int finalize_inside = seen.finalize_inside;
	pthread_mutex_unlock(&seen.lock);
	cs_error_t r = corosync_cfg_replyto_shutdown(handle, answer);
	pthread_mutex_lock(&seen.lock);
	seen.reply_result = r;
	pthread_mutex_unlock(&seen.lock);
	if (finalize_inside) {
		r = corosync_cfg_finalize(handle);
		pthread_mutex_lock(&seen.lock);
		seen.finalize_result = r;
		pthread_mutex_unlock(&seen.lock);
	}
}

static corosync_cfg_callbacks_t callbacks = {.corosync_cfg_shutdown_callback = shutdown_cb};

struct dispatcher {
	corosync_cfg_handle_t handle;
	cs_dispatch_flags_t flags;
	cs_error_t result;
};

static void *dispatch_thread(void *arg)
{
	struct dispatcher *d = arg;
	d->result = corosync_cfg_dispatch(d->handle, d->flags);
	return NULL;
}

static int is_ipv4(const corosync_cfg_node_address_t *a, const char *want)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)a->address;
	char text[INET_ADDRSTRLEN] = "";
	if (a->address_length != sizeof(struct sockaddr_in) || sin->sin_family != AF_INET)
		return 0;
	inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
	return strcmp(text, want) == 0;
}

static void bad_handles(corosync_cfg_handle_t h)
{
	int fd;
	unsigned int id;
	char **names, **states;
	unsigned int count;
	struct corosync_cfg_node_status_v1 ns;
	corosync_cfg_node_address_t addrs[2];
	int n;
	EXPECT(corosync_cfg_fd_get(h, &fd), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_dispatch(h, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_finalize(h), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_ring_status_get(h, &names, &states, &count), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_node_status_get(h, 1, CFG_NODE_STATUS_V1, &ns), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_kill_node(h, 1, "bad handle"), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_trackstart(h, 0), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_trackstop(h), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_try_shutdown(h, COROSYNC_CFG_SHUTDOWN_FLAG_REQUEST), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_replyto_shutdown(h, COROSYNC_CFG_SHUTDOWN_FLAG_NO), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_get_node_addrs(h, 0, 2, &n, addrs), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_local_get(h, &id), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_reload_config(h), CS_ERR_BAD_HANDLE);
	EXPECT(corosync_cfg_reopen_log_files(h), CS_ERR_BAD_HANDLE);
}

int main(void)
{
	corosync_cfg_handle_t h, tracker, stale;
	unsigned int id = 0;
	int fd = -1;

	bad_handles(0);
	EXPECT(corosync_cfg_initialize(NULL, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_initialize(&h, NULL), CS_OK);
	EXPECT(corosync_cfg_initialize(&stale, &callbacks), CS_OK);
	EXPECT(corosync_cfg_finalize(stale), CS_OK);
	bad_handles(stale);

	/* The node. */
	EXPECT(corosync_cfg_local_get(h, &id), CS_OK);
	CHECK(id == 3, "local node id %u", id);
	EXPECT(corosync_cfg_local_get(h, NULL), CS_ERR_INVALID_PARAM);

	/* Addresses: 0 is this node; a node without an address is CS_ERR_EXIST. */
	corosync_cfg_node_address_t addrs[4];
	int n = -1;
	memset(addrs, 0xff, sizeof(addrs));
	EXPECT(corosync_cfg_get_node_addrs(h, 0, 4, &n, addrs), CS_OK);
	CHECK(n == 1 && is_ipv4(&addrs[0], "127.0.0.3"), "node 0 is 127.0.0.3 (%d addresses)", n);
	EXPECT(corosync_cfg_get_node_addrs(h, 2, 4, &n, addrs), CS_OK);
	CHECK(n == 1 && is_ipv4(&addrs[0], "127.0.0.2"), "node 2 is 127.0.0.2 (%d addresses)", n);
	n = -1;
	EXPECT(corosync_cfg_get_node_addrs(h, 1, 0, &n, NULL), CS_OK);
	CHECK(n == 1, "room for none: still says how many (%d)", n);
	EXPECT(corosync_cfg_get_node_addrs(h, 99, 4, &n, addrs), CS_ERR_EXIST);
	EXPECT(corosync_cfg_get_node_addrs(h, 1, 4, NULL, addrs), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_get_node_addrs(h, 1, 4, &n, NULL), CS_ERR_INVALID_PARAM);

	/* Node status: V1 only. */
	struct corosync_cfg_node_status_v1 ns;
	for (unsigned int node = 1; node <= 3; node++) {
		memset(&ns, 0xff, sizeof(ns));
		EXPECT(corosync_cfg_node_status_get(h, node, CFG_NODE_STATUS_V1, &ns), CS_OK);
		CHECK(ns.version == CFG_NODE_STATUS_V1 && ns.nodeid == node && ns.reachable == 1 &&
			      ns.remote == 0 && ns.external == 0,
		      "node %u: version %d, id %u, reachable %d", node, ns.version, ns.nodeid,
		      ns.reachable);
		if (node == 3)
			continue;
		char dst[32];
		snprintf(dst, sizeof(dst), "127.0.0.%u", node);
		CHECK(ns.link_status[0].enabled == 1 && ns.link_status[0].connected == 1 &&
			      ns.link_status[0].mtu > 0 &&
			      strcmp(ns.link_status[0].src_ipaddr, "127.0.0.3") == 0 &&
			      strcmp(ns.link_status[0].dst_ipaddr, dst) == 0,
		      "node %u: link 0 enabled, connected, %s->%s mtu %u", node,
		      ns.link_status[0].src_ipaddr, ns.link_status[0].dst_ipaddr,
		      ns.link_status[0].mtu);
		CHECK(ns.link_status[1].enabled == 0, "node %u: no link 1", node);
	}
	EXPECT(corosync_cfg_node_status_get(h, 99, CFG_NODE_STATUS_V1, &ns), CS_ERR_NOT_EXIST);
	EXPECT(corosync_cfg_node_status_get(h, 1, 2, &ns), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_node_status_get(h, 1, CFG_NODE_STATUS_V1, NULL), CS_ERR_INVALID_PARAM);

	/* The link's status, malloc'ed for the caller. */
	char **names = NULL, **states = NULL;
	unsigned int count = 0;
	EXPECT(corosync_cfg_ring_status_get(h, &names, &states, &count), CS_OK);
	CHECK(count == 1 && strcmp(names[0], "0 127.0.0.3") == 0 && strcmp(states[0], "33n") == 0,
	      "one link: \"%s\" status \"%s\"", count ? names[0] : "", count ? states[0] : "");
	for (unsigned int i = 0; i < count; i++) {
		free(names[i]);
		free(states[i]);
	}
	free(names);
	free(states);
	EXPECT(corosync_cfg_ring_status_get(h, NULL, &states, &count), CS_ERR_INVALID_PARAM);

	/* Reload (the files are unchanged: applied everywhere), log files. */
	EXPECT(corosync_cfg_reload_config(h), CS_OK);
	EXPECT(corosync_cfg_reopen_log_files(h), CS_OK);

	/* Kill: refused before anything is asked. */
	char long_reason[300];
	memset(long_reason, 'r', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	EXPECT(corosync_cfg_kill_node(h, 1, long_reason), CS_ERR_NAME_TOO_LONG);
	EXPECT(corosync_cfg_kill_node(h, 1, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_kill_node(h, 99, "not in the ring"), CS_ERR_NOT_EXIST);

	/* Dispatch with nothing waiting. */
	EXPECT(corosync_cfg_fd_get(h, &fd), CS_OK);
	CHECK(fd >= 0, "fd %d", fd);
	EXPECT(corosync_cfg_fd_get(h, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_dispatch(h, CS_DISPATCH_ALL), CS_OK);
	EXPECT(corosync_cfg_dispatch(h, CS_DISPATCH_ONE_NONBLOCKING), CS_ERR_TRY_AGAIN);
	EXPECT(corosync_cfg_dispatch(h, 42), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_try_shutdown(h, 7), CS_ERR_INVALID_PARAM);
	EXPECT(corosync_cfg_replyto_shutdown(h, 7), CS_ERR_INVALID_PARAM);

	/* A blocking dispatch ends when another thread finalizes its handle. */
	corosync_cfg_handle_t blocked;
	EXPECT(corosync_cfg_initialize(&blocked, &callbacks), CS_OK);
	struct dispatcher bd = {.handle = blocked, .flags = CS_DISPATCH_BLOCKING, .result = -1};
	pthread_t bt;
	CHECK(pthread_create(&bt, NULL, dispatch_thread, &bd) == 0, "blocking dispatch thread");
	usleep(200 * 1000);
	EXPECT(corosync_cfg_finalize(blocked), CS_OK);
	pthread_join(bt, NULL);
	CHECK(bd.result == CS_ERR_BAD_HANDLE, "the blocking dispatch returned %d", bd.result);

	/* Shutdown with a say: a tracking handle that says no stops a REQUEST. */
	EXPECT(corosync_cfg_initialize(&tracker, &callbacks), CS_OK);
	EXPECT(corosync_cfg_trackstart(tracker, 0), CS_OK);
	int tracker_fd = -1;
	EXPECT(corosync_cfg_fd_get(tracker, &tracker_fd), CS_OK);
	seen.answer = COROSYNC_CFG_SHUTDOWN_FLAG_NO;
	struct dispatcher td = {.handle = tracker, .flags = CS_DISPATCH_ONE, .result = -1};
	pthread_t tt;
	CHECK(pthread_create(&tt, NULL, dispatch_thread, &td) == 0, "tracker dispatch thread");
	EXPECT(corosync_cfg_try_shutdown(h, COROSYNC_CFG_SHUTDOWN_FLAG_REQUEST), CS_ERR_BUSY);
	pthread_join(tt, NULL);
	CHECK(td.result == CS_OK && seen.calls == 1 && seen.handle == tracker &&
		      seen.flags == COROSYNC_CFG_SHUTDOWN_FLAG_REQUEST && seen.reply_result == CS_OK,
	      "the tracker was asked once (flags %d) and said no", seen.flags);
	struct pollfd p = {.fd = tracker_fd, .events = POLLIN};
	EXPECT(poll(&p, 1, 0), 0);

	/* Not tracking any more: nobody is asked. The tracker tracks again and agrees, then
	 * finalizes inside its callback; node 3 shuts down. */
	EXPECT(corosync_cfg_trackstop(tracker), CS_OK);
	EXPECT(corosync_cfg_trackstart(tracker, 0), CS_OK);
	seen.answer = COROSYNC_CFG_SHUTDOWN_FLAG_YES;
	seen.finalize_inside = 1;
	td.result = -1;
	td.flags = CS_DISPATCH_BLOCKING;
	CHECK(pthread_create(&tt, NULL, dispatch_thread, &td) == 0, "tracker dispatch thread");
	printf("%d passed so far; node 3 shuts down\n", checks);
	fflush(stdout);
	EXPECT(corosync_cfg_try_shutdown(h, COROSYNC_CFG_SHUTDOWN_FLAG_REQUEST), CS_OK);
	pthread_join(tt, NULL);
	CHECK(seen.calls == 2 && seen.reply_result == CS_OK && seen.finalize_result == CS_OK,
	      "the tracker agreed and finalized in its callback");
	CHECK(td.result == CS_ERR_BAD_HANDLE, "its dispatch returned %d", td.result);
	/* The node goes away: the handle's calls fail, finalize still works. */
	cs_error_t r = CS_OK;
	for (int i = 0; i < 100 && r == CS_OK; i++) {
		usleep(100 * 1000);
		r = corosync_cfg_local_get(h, &id);
	}
	CHECK(r == CS_ERR_LIBRARY, "calls after the node stopped: %d", r);
	EXPECT(corosync_cfg_finalize(h), CS_OK);
	EXPECT(corosync_cfg_dispatch(h, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);
	printf("%d passed, 0 failed\n", checks);
	return 0;
}
