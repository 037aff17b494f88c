/*
 * cmap_test: every function of libcmap.so.4 (and libcorosync_common.so.4's cs_strerror),
 * success and error paths, against a running rotor node. Built against corosync's installed
 * <corosync/cmap.h>, linked with -lcmap -lcorosync_common, run with rotor's libraries first
 * on LD_LIBRARY_PATH.
 *
 *   cmap_test CLUSTER_NAME
 *
 * Prints one "ok - what" line per check; the first failed check prints "not ok - what" and
 * exits 1.
 */
#define _GNU_SOURCE
#include <corosync/cmap.h>
#include <corosync/corotypes.h>
#include <float.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	int events;
	int32_t kinds[8];
	char keys[8][64];
	uint32_t new_u32[8];
	size_t old_len[8];
	void *user_data;
	cmap_track_handle_t track;
} seen;

static void on_change(cmap_handle_t h, cmap_track_handle_t th, int32_t event, const char *key,
		      struct cmap_notify_value new_val, struct cmap_notify_value old_val, void *user)
{
	int i = seen.events++;
	if (i >= 8)
		return;
	seen.kinds[i] = event;
	snprintf(seen.keys[i], sizeof seen.keys[i], "%s", key);
	if (new_val.type == CMAP_VALUETYPE_UINT32 && new_val.len == 4)
		memcpy(&seen.new_u32[i], new_val.data, 4);
	seen.old_len[i] = old_val.len;
	seen.user_data = user;
	seen.track = th;
	(void)h;
}

static cs_error_t blocking_result = CS_OK;

static void *blocking_dispatch(void *arg)
{
	blocking_result = cmap_dispatch(*(cmap_handle_t *)arg, CS_DISPATCH_BLOCKING);
	return NULL;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int pump(cmap_handle_t h, int want)
{
	int fd;
	uint64_t deadline = now_ms() + 10000;
	while (seen.events < want && now_ms() < deadline) {
		if (cmap_fd_get(h, &fd) != CS_OK)
			return 0;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, 100);
		if (cmap_dispatch(h, CS_DISPATCH_ALL) != CS_OK)
			return 0;
	}
	return seen.events >= want;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: cmap_test CLUSTER_NAME\n");
		return 2;
	}
	cmap_handle_t h, hs;
	cmap_iter_handle_t it;
	cmap_track_handle_t th;
	cmap_value_types_t type;
	char key[CMAP_KEYNAME_MAXLEN + 1];
	char buf[64];
	size_t len;
	const void *ctx;
	int ctx_a, fd;
	uint32_t u32;
	char *str;

	CHECK(strcmp(cs_strerror(CS_OK), "success") == 0, "cs_strerror(CS_OK)");
	CHECK(strcmp(cs_strerror(CS_ERR_TRY_AGAIN), "CS_ERR_TRY_AGAIN") == 0, "cs_strerror(CS_ERR_TRY_AGAIN)");
	CHECK(qb_to_cs_error(-11) == CS_ERR_TRY_AGAIN, "qb_to_cs_error(-EAGAIN)");
	CHECK(hdb_error_to_cs(-9) == CS_ERR_BAD_HANDLE, "hdb_error_to_cs(-EBADF)");

	/* Handles that never existed. */
	EXPECT(cmap_finalize(0), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_get_uint32(0, "totem.token", &u32), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_dispatch(77, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_initialize(NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_initialize_map(&h, 7), CS_ERR_INVALID_PARAM);

	EXPECT(cmap_initialize(&h), CS_OK);
	EXPECT(cmap_context_set(h, &ctx_a), CS_OK);
	EXPECT(cmap_context_get(h, &ctx), CS_OK);
	CHECK(ctx == &ctx_a, "context round trip");
	EXPECT(cmap_fd_get(h, &fd), CS_OK);
	CHECK(fd >= 0, "pollable fd %d", fd);
	EXPECT(cmap_fd_get(h, NULL), CS_ERR_INVALID_PARAM);

	/* Every type, set and read back. */
	int8_t i8; uint8_t u8; int16_t i16; uint16_t u16; int32_t i32; int64_t i64; uint64_t u64;
	float flt; double dbl;
	EXPECT(cmap_set_int8(h, "capi.t.i8", -8), CS_OK);
	EXPECT(cmap_get_int8(h, "capi.t.i8", &i8), CS_OK); CHECK(i8 == -8, "i8");
	EXPECT(cmap_set_uint8(h, "capi.t.u8", 255), CS_OK);
	EXPECT(cmap_get_uint8(h, "capi.t.u8", &u8), CS_OK); CHECK(u8 == 255, "u8");
	EXPECT(cmap_set_int16(h, "capi.t.i16", -1600), CS_OK);
	EXPECT(cmap_get_int16(h, "capi.t.i16", &i16), CS_OK); CHECK(i16 == -1600, "i16");
	EXPECT(cmap_set_uint16(h, "capi.t.u16", 1600), CS_OK);
	EXPECT(cmap_get_uint16(h, "capi.t.u16", &u16), CS_OK); CHECK(u16 == 1600, "u16");
	EXPECT(cmap_set_int32(h, "capi.t.i32", -32), CS_OK);
	EXPECT(cmap_get_int32(h, "capi.t.i32", &i32), CS_OK); CHECK(i32 == -32, "i32");
	EXPECT(cmap_set_uint32(h, "capi.t.u32", 32), CS_OK);
	EXPECT(cmap_get_uint32(h, "capi.t.u32", &u32), CS_OK); CHECK(u32 == 32, "u32");
	EXPECT(cmap_set_int64(h, "capi.t.i64", -6400000000LL), CS_OK);
	EXPECT(cmap_get_int64(h, "capi.t.i64", &i64), CS_OK); CHECK(i64 == -6400000000LL, "i64");
	EXPECT(cmap_set_uint64(h, "capi.t.u64", 6400000000ULL), CS_OK);
	EXPECT(cmap_get_uint64(h, "capi.t.u64", &u64), CS_OK); CHECK(u64 == 6400000000ULL, "u64");
	EXPECT(cmap_set_float(h, "capi.t.flt", 1.5f), CS_OK);
	EXPECT(cmap_get_float(h, "capi.t.flt", &flt), CS_OK); CHECK(flt == 1.5f, "float");
	EXPECT(cmap_set_double(h, "capi.t.dbl", -2.25), CS_OK);
	EXPECT(cmap_get_double(h, "capi.t.dbl", &dbl), CS_OK); CHECK(dbl == -2.25, "double");
	EXPECT(cmap_set_string(h, "capi.t.str", "hello"), CS_OK);
	EXPECT(cmap_get_string(h, "capi.t.str", &str), CS_OK);
	CHECK(strcmp(str, "hello") == 0, "string \"%s\"", str);
	free(str);
	EXPECT(cmap_set(h, "capi.t.bin", "\x00\x01\x02", 3, CMAP_VALUETYPE_BINARY), CS_OK);
	len = sizeof buf;
	EXPECT(cmap_get(h, "capi.t.bin", buf, &len, &type), CS_OK);
	CHECK(len == 3 && type == CMAP_VALUETYPE_BINARY && buf[2] == 2, "binary value");
	EXPECT(cmap_get(h, "capi.t.str", NULL, &len, &type), CS_OK);
	CHECK(len == 6 && type == CMAP_VALUETYPE_STRING, "string size counts its NUL (%zu)", len);
	len = 3;
	EXPECT(cmap_get(h, "capi.t.str", buf, &len, &type), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_get(h, "capi.t.str", buf, NULL, &type), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_get_uint32(h, "capi.t.u8", &u32), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_get_string(h, "capi.t.u8", &str), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_set_uint16(h, "capi.t.u8", 1), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_set(h, "capi.t.u32", buf, 3, CMAP_VALUETYPE_UINT32), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_set(h, "capi.t.x", buf, 1, 99), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_set(h, "capi.t.x", NULL, 1, CMAP_VALUETYPE_UINT8), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_set_string(h, "capi.t.x", NULL), CS_ERR_INVALID_PARAM);

	/* Key names. */
	char long_key[300];
	memset(long_key, 'k', sizeof long_key - 1);
	long_key[sizeof long_key - 1] = 0;
	EXPECT(cmap_get_uint32(h, NULL, &u32), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_get_uint32(h, long_key, &u32), CS_ERR_NAME_TOO_LONG);
	EXPECT(cmap_set_uint32(h, long_key, 1), CS_ERR_NAME_TOO_LONG);
	EXPECT(cmap_delete(h, long_key), CS_ERR_NAME_TOO_LONG);
	EXPECT(cmap_get_uint32(h, "capi.no.such.key", &u32), CS_ERR_NOT_EXIST);
	EXPECT(cmap_get_uint32(h, "capi.t.u32", NULL), CS_ERR_INVALID_PARAM);

	/* inc / dec. */
	EXPECT(cmap_inc(h, "capi.t.u8"), CS_OK);
	EXPECT(cmap_get_uint8(h, "capi.t.u8", &u8), CS_OK); CHECK(u8 == 0, "inc wraps u8 to 0");
	EXPECT(cmap_dec(h, "capi.t.u8"), CS_OK);
	EXPECT(cmap_get_uint8(h, "capi.t.u8", &u8), CS_OK); CHECK(u8 == 255, "dec wraps back to 255");
	EXPECT(cmap_inc(h, "capi.t.u32"), CS_OK);
	EXPECT(cmap_get_uint32(h, "capi.t.u32", &u32), CS_OK); CHECK(u32 == 33, "inc u32");
	EXPECT(cmap_inc(h, "capi.t.str"), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_dec(h, "capi.t.dbl"), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_inc(h, "capi.no.such.key"), CS_ERR_NOT_EXIST);
	EXPECT(cmap_inc(h, NULL), CS_ERR_INVALID_PARAM);

	/* What clients may not change. */
	EXPECT(cmap_set_uint32(h, "runtime.capi", 1), CS_ERR_ACCESS);
	EXPECT(cmap_set_uint32(h, "runtime.config.totem.token", 5000), CS_ERR_ACCESS);
	EXPECT(cmap_delete(h, "totem.cluster_name"), CS_ERR_ACCESS);
	EXPECT(cmap_get_string(h, "totem.cluster_name", &str), CS_OK);
	CHECK(strcmp(str, argv[1]) == 0, "totem.cluster_name is %s", str);
	free(str);

	/* Iteration. */
	EXPECT(cmap_iter_init(h, "capi.t.", &it), CS_OK);
	int n = 0, saw_u64 = 0;
	while (cmap_iter_next(h, it, key, &len, &type) == CS_OK) {
		n++;
		if (strcmp(key, "capi.t.u64") == 0)
			saw_u64 = len == 8 && type == CMAP_VALUETYPE_UINT64;
	}
	CHECK(n == 12, "12 keys under capi.t. (%d)", n);
	CHECK(saw_u64, "capi.t.u64: 8 bytes, uint64");
	EXPECT(cmap_iter_next(h, it, key, &len, &type), CS_ERR_NO_SECTIONS);
	EXPECT(cmap_iter_next(h, it, NULL, &len, &type), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_iter_finalize(h, it), CS_OK);
	EXPECT(cmap_iter_next(h, it, key, &len, &type), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_iter_finalize(h, it), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_iter_init(h, NULL, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_iter_init(h, NULL, &it), CS_OK);
	n = 0;
	int saw_name = 0;
	while (cmap_iter_next(h, it, key, NULL, NULL) == CS_OK) {
		n++;
		saw_name |= strcmp(key, "totem.cluster_name") == 0;
	}
	CHECK(saw_name && n > 12, "a NULL prefix iterates every key (%d)", n);
	EXPECT(cmap_iter_finalize(h, it), CS_OK);

	/* Tracking. */
	int user = 0;
	EXPECT(cmap_track_add(h, "capi.track.", CMAP_TRACK_ADD, NULL, NULL, &th), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_track_add(h, "capi.track.", 0, on_change, NULL, &th), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_track_add(h, "capi.track.", CMAP_TRACK_ADD, on_change, NULL, NULL), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_track_add(h, "capi.track.",
			      CMAP_TRACK_ADD | CMAP_TRACK_DELETE | CMAP_TRACK_MODIFY | CMAP_TRACK_PREFIX,
			      on_change, &user, &th), CS_OK);
	EXPECT(cmap_dispatch(h, CS_DISPATCH_ONE_NONBLOCKING), CS_ERR_TRY_AGAIN);
	EXPECT(cmap_dispatch(h, 9), CS_ERR_INVALID_PARAM);
	EXPECT(cmap_set_uint32(h, "capi.track.a", 1), CS_OK);
	EXPECT(cmap_set_uint32(h, "capi.track.a", 2), CS_OK);
	EXPECT(cmap_delete(h, "capi.track.a"), CS_OK);
	EXPECT(cmap_delete(h, "capi.track.a"), CS_ERR_NOT_EXIST);
	CHECK(pump(h, 3), "three notifications");
	CHECK(seen.kinds[0] == CMAP_TRACK_ADD && seen.new_u32[0] == 1 && strcmp(seen.keys[0], "capi.track.a") == 0,
	      "create capi.track.a = 1");
	CHECK(seen.kinds[1] == CMAP_TRACK_MODIFY && seen.new_u32[1] == 2 && seen.old_len[1] == 4,
	      "modify to 2, old value of 4 bytes");
	CHECK(seen.kinds[2] == CMAP_TRACK_DELETE, "delete");
	CHECK(seen.user_data == &user && seen.track == th, "user data and track handle");
	EXPECT(cmap_track_delete(h, th), CS_OK);
	EXPECT(cmap_track_delete(h, th), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_set_uint32(h, "capi.track.b", 1), CS_OK);
	EXPECT(cmap_dispatch(h, CS_DISPATCH_ALL), CS_OK);
	CHECK(seen.events == 3, "no notification after cmap_track_delete");

	/* The stats map. */
	EXPECT(cmap_initialize_map(&hs, CMAP_MAP_STATS), CS_OK);
	EXPECT(cmap_iter_init(hs, NULL, &it), CS_OK);
	n = 0;
	int all_stats = 1;
	char first[CMAP_KEYNAME_MAXLEN + 1] = "";
	while (cmap_iter_next(hs, it, key, &len, &type) == CS_OK) {
		if (n++ == 0)
			strcpy(first, key);
		all_stats &= strncmp(key, "stats.", 6) == 0;
	}
	CHECK(n > 0 && all_stats, "the stats map holds %d keys, all under stats.", n);
	EXPECT(cmap_iter_finalize(hs, it), CS_OK);
	EXPECT(cmap_get(hs, first, NULL, &len, &type), CS_OK);
	EXPECT(cmap_get_string(hs, "totem.cluster_name", &str), CS_ERR_NOT_EXIST);
	EXPECT(cmap_iter_init(hs, "totem.", &it), CS_OK);
	EXPECT(cmap_iter_next(hs, it, key, &len, &type), CS_ERR_NO_SECTIONS);
	EXPECT(cmap_iter_finalize(hs, it), CS_OK);
	EXPECT(cmap_finalize(hs), CS_OK);

	/* A blocking dispatch in another thread ends when the handle is finalized. */
	cmap_handle_t hb;
	pthread_t thread;
	EXPECT(cmap_initialize(&hb), CS_OK);
	CHECK(pthread_create(&thread, NULL, blocking_dispatch, &hb) == 0, "dispatch thread started");
	usleep(200000);
	EXPECT(cmap_finalize(hb), CS_OK);
	pthread_join(thread, NULL);
	CHECK(blocking_result == CS_ERR_BAD_HANDLE,
	      "CS_DISPATCH_BLOCKING returns CS_ERR_BAD_HANDLE once another thread finalizes (%d)",
	      blocking_result);

	/* After finalize. */
	EXPECT(cmap_finalize(h), CS_OK);
	EXPECT(cmap_finalize(h), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_dispatch(h, CS_DISPATCH_ALL), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_get_uint32(h, "capi.t.u32", &u32), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_set_uint32(h, "capi.t.u32", 1), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_context_get(h, &ctx), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_iter_init(h, NULL, &it), CS_ERR_BAD_HANDLE);
	EXPECT(cmap_track_add(h, "x.y.z", CMAP_TRACK_ADD, on_change, NULL, &th), CS_ERR_BAD_HANDLE);
	printf("%d passed, 0 failed\n", checks);
	return 0;
}
