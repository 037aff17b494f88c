/*
 * cpg_bench: the workloads of `rotor bench` (client/src/bench.rs) over Corosync's libcpg, so that
 * rotor-bench's vs-corosync run measures both systems with the same client behaviour and reads
 * both with one parser.
 *
 *   cpg_bench lat|tput [-s SIZE] [-n COUNT] [-t SECONDS] [-g GROUP] [-m MEMBERS]
 *
 * Every message starts with the sender's sequence number and its send time (u64 little-endian
 * each, nanoseconds on CLOCK_MONOTONIC since the bench started), padded with 0xa5 to SIZE.
 * lat: one message in flight; the time from cpg_mcast_joined to its own agreed delivery is one
 * sample. tput: send for SECONDS as fast as flow control allows; count every delivery. Both
 * check that each sender's sequence numbers arrive in order with none missing (seq_errors).
 * The output is one line, the same keys as `rotor bench`, plus `dist_us` (see print_dist).
 *
 * Built by rotor-bench at run time with `cc -O2 … -lcpg`; not part of the cargo build.
 */
#define _GNU_SOURCE
#include <corosync/cpg.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEAD 16
#define SENDERS_MAX 256
#define SETUP_TIMEOUT_NS (30ull * 1000000000ull)
#define LAT_WAIT_NS (10ull * 1000000000ull)
#define DRAIN_NS (5ull * 1000000000ull)

struct sender {
	uint32_t nodeid, pid;
	uint64_t next_seq;
};

static struct {
	uint64_t start_ns;
	uint32_t my_nodeid, my_pid;
	struct sender senders[SENDERS_MAX];
	size_t sender_count;
	uint64_t seq_errors, delivered, delivered_bytes, own_seen;
	uint64_t *samples;
	size_t sample_count, sample_cap;
	size_t members;
} tally;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t since_start(void)
{
	return now_ns() - tally.start_ns;
}

static uint64_t read_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void write_u64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static struct sender *sender_of(uint32_t nodeid, uint32_t pid, uint64_t first_seq)
{
	for (size_t i = 0; i < tally.sender_count; i++)
		if (tally.senders[i].nodeid == nodeid && tally.senders[i].pid == pid)
			return &tally.senders[i];
	if (tally.sender_count == SENDERS_MAX)
		return NULL;
	struct sender *s = &tally.senders[tally.sender_count++];
	s->nodeid = nodeid;
	s->pid = pid;
	s->next_seq = first_seq;
	return s;
}

static void on_deliver(cpg_handle_t handle, const struct cpg_name *group, uint32_t nodeid,
		       uint32_t pid, void *msg, size_t len)
{
	(void)handle;
	(void)group;
	tally.delivered++;
	tally.delivered_bytes += len;
	if (len < HEAD) {
		tally.seq_errors++;
		return;
	}
	const unsigned char *data = msg;
	uint64_t seq = read_u64(data);
	struct sender *s = sender_of(nodeid, pid, seq);
	if (s == NULL || s->next_seq != seq)
		tally.seq_errors++;
	if (s != NULL)
		s->next_seq = seq + 1;
	if (nodeid == tally.my_nodeid && pid == tally.my_pid) {
		tally.own_seen++;
		if (tally.start_ns != 0 && tally.sample_count < tally.sample_cap) {
			uint64_t sent = read_u64(data + 8), now = since_start();
			tally.samples[tally.sample_count++] = now > sent ? now - sent : 0;
		}
	}
}

static void on_confchg(cpg_handle_t handle, const struct cpg_name *group,
		       const struct cpg_address *members, size_t member_count,
		       const struct cpg_address *left, size_t left_count,
		       const struct cpg_address *joined, size_t joined_count)
{
	(void)handle;
	(void)group;
	(void)members;
	(void)left;
	(void)left_count;
	(void)joined;
	(void)joined_count;
	tally.members = member_count;
}

static void die(const char *what, cs_error_t err)
{
	fprintf(stderr, "cpg_bench: %s: cs_error %d\n", what, (int)err);
	exit(1);
}

static void dispatch(cpg_handle_t h, cs_dispatch_flags_t how)
{
	cs_error_t err = cpg_dispatch(h, how);
	if (err != CS_OK && err != CS_ERR_TRY_AGAIN)
		die("cpg_dispatch", err);
}

/*
 * Flow control said try again: sleep until something is delivered (at most 1 ms), then
 * dispatch, rather than spin (the same as `rotor bench tput`).
 */
static void wait_and_dispatch(cpg_handle_t h)
{
	int fd;
	if (cpg_fd_get(h, &fd) == CS_OK) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, 1);
	}
	dispatch(h, CS_DISPATCH_ALL);
}

static void fill(unsigned char *buf, size_t size, uint64_t seq)
{
	write_u64(buf, seq);
	write_u64(buf + 8, since_start());
	memset(buf + HEAD, 0xa5, size - HEAD);
}

/* Multicasts one message; false when flow control says try again. */
static int mcast(cpg_handle_t h, unsigned char *buf, size_t size)
{
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	cs_error_t err = cpg_mcast_joined(h, CPG_TYPE_AGREED, &iov, 1);
	if (err == CS_ERR_TRY_AGAIN)
		return 0;
	if (err != CS_OK)
		die("cpg_mcast_joined", err);
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank value at percentile p (0 < p <= 100) of sorted samples, in µs. */
static double at(double p)
{
	size_t n = tally.sample_count;
	if (n == 0)
		return 0.0;
	size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)tally.samples[rank - 1] / 1000.0;
}

/*
 * dist_us=P:V,… — the latency at each percentile of a fixed ladder that has at least one sample
 * above it, then 100:max. The same ladder as `rotor bench lat`.
 */
static void print_dist(void)
{
	static const double ladder[] = { 50,    75,    90,     95,    99,    99.5,
					 99.9,  99.95, 99.99, 99.995, 99.999 };
	printf(" dist_us=");
	for (size_t i = 0; i < sizeof ladder / sizeof ladder[0]; i++)
		if ((double)tally.sample_count * (1.0 - ladder[i] / 100.0) >= 1.0 - 1e-9)
			printf("%g:%.1f,", ladder[i], at(ladder[i]));
	printf("100:%.1f", at(100.0));
}

static cpg_handle_t setup(const char *group, size_t members)
{
	cpg_callbacks_t callbacks = { .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg };
	cpg_handle_t h;
	cs_error_t err;
	uint64_t deadline = now_ns() + SETUP_TIMEOUT_NS;
	/* The daemon may still be starting: retry the connection until the deadline. */
	while ((err = cpg_initialize(&h, &callbacks)) != CS_OK) {
		if (now_ns() > deadline)
			die("cpg_initialize", err);
		usleep(100000);
	}
	struct cpg_name name;
	name.length = (uint32_t)strnlen(group, CPG_MAX_NAME_LENGTH);
	memcpy(name.value, group, name.length);
	while ((err = cpg_join(h, &name)) == CS_ERR_TRY_AGAIN)
		usleep(1000);
	if (err != CS_OK)
		die("cpg_join", err);
	unsigned int nodeid;
	if ((err = cpg_local_get(h, &nodeid)) != CS_OK)
		die("cpg_local_get", err);
	tally.my_nodeid = nodeid;
	tally.my_pid = (uint32_t)getpid();
	while (tally.members < (members ? members : 1)) {
		if (now_ns() > deadline) {
			fprintf(stderr, "cpg_bench: timed out waiting for %zu members (have %zu)\n",
				members, tally.members);
			exit(1);
		}
		dispatch(h, CS_DISPATCH_ALL);
		usleep(1000);
	}
	tally.start_ns = now_ns();
	return h;
}

static void lat(cpg_handle_t h, size_t size, uint64_t count, double seconds)
{
	unsigned char *buf = malloc(size);
	uint64_t deadline = (uint64_t)(seconds * 1e9), seq = 0;
	while (seq < count && since_start() < deadline) {
		fill(buf, size, seq);
		while (!mcast(h, buf, size))
			dispatch(h, CS_DISPATCH_ALL);
		seq++;
		uint64_t wait_until = now_ns() + LAT_WAIT_NS;
		/* Busy: CS_DISPATCH_ALL returns at once when nothing is queued (like rotor's Busy). */
		while (tally.own_seen < seq) {
			if (now_ns() > wait_until) {
				fprintf(stderr, "cpg_bench: own message %" PRIu64 " not delivered\n", seq);
				exit(1);
			}
			dispatch(h, CS_DISPATCH_ALL);
		}
	}
	qsort(tally.samples, tally.sample_count, sizeof(uint64_t), cmp_u64);
	printf("bench=lat size=%zu count=%zu p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
	       "seq_errors=%" PRIu64,
	       size, tally.sample_count, at(50), at(99), at(99.9), at(100), tally.seq_errors);
	print_dist();
	printf("\n");
	free(buf);
}

static void tput(cpg_handle_t h, size_t size, uint64_t count, double seconds)
{
	unsigned char *buf = malloc(size);
	uint64_t deadline = (uint64_t)(seconds * 1e9), seq = 0;
	uint64_t base_msgs = tally.delivered, base_bytes = tally.delivered_bytes;
	while (since_start() < deadline && seq < count) {
		fill(buf, size, seq);
		if (mcast(h, buf, size))
			seq++;
		else
			wait_and_dispatch(h);
		if (seq % 64 == 0)
			dispatch(h, CS_DISPATCH_ALL);
	}
	double elapsed = (double)since_start() / 1e9;
	uint64_t msgs = tally.delivered - base_msgs, bytes = tally.delivered_bytes - base_bytes;
	uint64_t drain_until = now_ns() + DRAIN_NS;
	while (tally.own_seen < seq && now_ns() < drain_until) {
		dispatch(h, CS_DISPATCH_ALL);
		usleep(200);
	}
	printf("bench=tput size=%zu sent=%" PRIu64 " delivered_msgs_per_s=%.0f delivered_MBps=%.2f "
	       "seq_errors=%" PRIu64 "\n",
	       size, seq, (double)msgs / elapsed, (double)bytes / elapsed / 1e6, tally.seq_errors);
	free(buf);
}

static void usage(void)
{
	fprintf(stderr, "usage: cpg_bench lat|tput [-s SIZE] [-n COUNT] [-t SECONDS] [-g GROUP] "
			"[-m MEMBERS]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *kind = argv[1];
	size_t size = 64, members = 1;
	uint64_t count = 10000;
	double seconds = 10.0;
	const char *group = "rotor-bench";
	int opt;
	optind = 2;
	while ((opt = getopt(argc, argv, "s:n:t:g:m:")) != -1) {
		switch (opt) {
		case 's': size = strtoul(optarg, NULL, 10); break;
		case 'n': count = strtoull(optarg, NULL, 10); break;
		case 't': seconds = strtod(optarg, NULL); break;
		case 'g': group = optarg; break;
		case 'm': members = strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (size < HEAD)
		size = HEAD;
	/* Latency samples are kept only by lat (at most 10 M of them). */
	tally.sample_cap = strcmp(kind, "lat") != 0 ? 0 : count < 10000000 ? (size_t)count : 10000000;
	tally.samples = calloc(tally.sample_cap ? tally.sample_cap : 1, sizeof(uint64_t));
	if (tally.samples == NULL) {
		fprintf(stderr, "cpg_bench: out of memory\n");
		return 1;
	}
	cpg_handle_t h = setup(group, members);
	if (strcmp(kind, "lat") == 0)
		lat(h, size, count, seconds);
	else if (strcmp(kind, "tput") == 0)
		tput(h, size, count, seconds);
	else
		usage();
	fflush(stdout);
	cpg_finalize(h);
	return 0;
}
