// SPDX-License-Identifier: Apache-2.0
//
// rotor_steer: the XDP program of rotor. It steers the cluster's UDP traffic from the nodelist's
// addresses to the AF_XDP socket of the receive queue it arrived on and passes everything else
// to the kernel untouched.
//
// The source filter: once the loader has filled `sources` (every address of every link of every
// configured node) and switched `filter` on, a frame to a cluster port from any other address is
// not redirected: it is passed to the kernel (where no socket listens, so the host's firewall sees
// and counts it) or dropped, as `filter` says. Frames from the nodelist bypass the kernel, and
// with it the host's firewall; every one of them is still authenticated by the dataplane.
//
// It never rewrites or answers a packet: its actions are XDP_REDIRECT (into the `xsks` map),
// XDP_PASS and, only for cluster-port frames from unknown sources when so configured, XDP_DROP.
// The maps below are an interface to the Rust loader and the dataplane (see
// docs/ARCHITECTURE.md, section `xdp-prog/`); keep the two in step.
//
// Self-contained on purpose: it needs only the kernel UAPI headers (linux-libc-dev), not
// libbpf's bpf_helpers.h, so the build depends on nothing the xtask does not install.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/types.h>
#include <linux/udp.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

// Helper prototypes: the numbers are the stable helper ids of the kernel UAPI.
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

// Byte order: BPF on x86 and arm64 is little-endian; the wire is big-endian.
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define wire16(x) __builtin_bswap16(x)
#else
#define wire16(x) (x)
#endif

// Keep in step with src/lib.rs: PORT_COUNT_MAX, QUEUE_COUNT_MAX, SOURCE_COUNT_MAX, Counter,
// UnknownSource, SourceKey, SourceValue.
#define PORT_COUNT_MAX 16
#define QUEUE_COUNT_MAX 256
// 8 links (corosync's INTERFACE_MAX) x 384 nodes (its PROCESSOR_COUNT_MAX with knet).
#define SOURCE_COUNT_MAX 3072

enum counter {
	COUNTER_REDIRECTED = 0, // cluster frame handed to the AF_XDP socket of its queue
	COUNTER_PASSED = 1,     // parsed, not cluster traffic (other port, TCP, ARP, fragment...)
	COUNTER_NOT_PARSED = 2, // truncated or malformed headers
	COUNTER_NO_SOCKET = 3,  // cluster port, but no AF_XDP socket on this queue: passed
	COUNTER_UNKNOWN_SOURCE_PASSED = 4,  // cluster port, source not in `sources`: passed
	COUNTER_UNKNOWN_SOURCE_DROPPED = 5, // cluster port, source not in `sources`: dropped
	COUNTER_COUNT = 6,
};

// What the source filter does with a cluster-port frame whose source is not in `sources`.
enum unknown_source {
	UNKNOWN_SOURCE_OFF = 0,  // no filter (the zero value: a program nobody configured)
	UNKNOWN_SOURCE_PASS = 1, // to the kernel
	UNKNOWN_SOURCE_DROP = 2, // dropped here
};

// A source address: family 4 (the address in addr[0..4], the rest zero) or 6.
struct source_key {
	__u8 family;
	__u8 reserved[3];
	__u8 addr[16];
};

// Who has that address (for the loader and `rotor status`; the program only tests presence).
struct source_value {
	__u32 node_id;
	__u8 link;
	__u8 reserved[3];
};

struct filter_settings {
	__u32 unknown_source; // enum unknown_source
};

// The cluster's UDP destination ports, host byte order. Value: 1 (unused).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, PORT_COUNT_MAX);
} ports SEC(".maps");

// AF_XDP sockets by receive queue index; set by the dataplane.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, QUEUE_COUNT_MAX);
} xsks SEC(".maps");

// Every address of every link of every configured node; kept by rotord.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct source_key);
	__type(value, struct source_value);
	__uint(max_entries, SOURCE_COUNT_MAX);
} sources SEC(".maps");

// One entry: the filter's settings, written by the loader after `sources`.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct filter_settings);
	__uint(max_entries, 1);
} filter SEC(".maps");

// Per-CPU counters indexed by enum counter; the loader sums them over CPUs.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, COUNTER_COUNT);
} counters SEC(".maps");

#define VLAN_VID_HEADER_SIZE 4
#define IPV4_FRAGMENT_OFFSET_MASK 0x1fff
#define IPV4_MORE_FRAGMENTS 0x2000

static __always_inline int count(__u32 index, int action)
{
	__u64 *value = bpf_map_lookup_elem(&counters, &index);
	if (value)
		*value += 1; // per-CPU slot: no other writer
	return action;
}

// Frags-aware (BPF_F_XDP_HAS_FRAGS, libbpf's `xdp.frags` section): a frame larger than one
// buffer (jumbo frames; AF_XDP multi-buffer sockets) arrives with its first buffer between data
// and data_end and the rest as fragments. Every header read here lies in the first buffer and
// is bounds-checked against that data_end, so the program is the same for both; without the
// flag, the kernel refuses the program on veth whose peer's MTU exceeds one page less headroom.
SEC("xdp.frags")
int rotor_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return count(COUNTER_NOT_PARSED, XDP_PASS);
	void *l3 = eth + 1;
	__u16 ether_type = eth->h_proto;

	// One 802.1Q tag: 2 bytes TCI, then the inner EtherType.
	if (ether_type == wire16(ETH_P_8021Q)) {
		if (l3 + VLAN_VID_HEADER_SIZE > data_end)
			return count(COUNTER_NOT_PARSED, XDP_PASS);
		ether_type = *(__u16 *)(l3 + 2);
		l3 += VLAN_VID_HEADER_SIZE;
	}

	struct udphdr *udp;
	struct source_key source;
	__builtin_memset(&source, 0, sizeof(source));
	if (ether_type == wire16(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > data_end)
			return count(COUNTER_NOT_PARSED, XDP_PASS);
		if (ip->version != 4 || ip->ihl < 5)
			return count(COUNTER_NOT_PARSED, XDP_PASS);
		if (ip->protocol != IPPROTO_UDP)
			return count(COUNTER_PASSED, XDP_PASS);
		// Every fragment goes to the kernel, which reassembles; a first fragment steered
		// away without its tail would be lost to both sides.
		if (ip->frag_off & wire16(IPV4_FRAGMENT_OFFSET_MASK | IPV4_MORE_FRAGMENTS))
			return count(COUNTER_PASSED, XDP_PASS);
		source.family = 4;
		__builtin_memcpy(source.addr, &ip->saddr, sizeof(ip->saddr));
		// ihl is 4 bits: the offset is bounded by 60, which the verifier can follow.
		udp = l3 + ip->ihl * 4;
	} else if (ether_type == wire16(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > data_end)
			return count(COUNTER_NOT_PARSED, XDP_PASS);
		if (ip6->version != 6)
			return count(COUNTER_NOT_PARSED, XDP_PASS);
		// Extension headers (fragment header included) are the kernel's business.
		if (ip6->nexthdr != IPPROTO_UDP)
			return count(COUNTER_PASSED, XDP_PASS);
		source.family = 6;
		__builtin_memcpy(source.addr, &ip6->saddr, sizeof(ip6->saddr));
		udp = (void *)(ip6 + 1);
	} else {
		return count(COUNTER_PASSED, XDP_PASS);
	}

	if ((void *)(udp + 1) > data_end)
		return count(COUNTER_NOT_PARSED, XDP_PASS);
	__u16 port = wire16(udp->dest);
	if (!bpf_map_lookup_elem(&ports, &port))
		return count(COUNTER_PASSED, XDP_PASS);

	// The source filter: only the nodelist's addresses reach the AF_XDP socket.
	__u32 zero = 0;
	struct filter_settings *settings = bpf_map_lookup_elem(&filter, &zero);
	if (settings && settings->unknown_source != UNKNOWN_SOURCE_OFF &&
	    !bpf_map_lookup_elem(&sources, &source)) {
		if (settings->unknown_source == UNKNOWN_SOURCE_DROP)
			return count(COUNTER_UNKNOWN_SOURCE_DROPPED, XDP_DROP);
		return count(COUNTER_UNKNOWN_SOURCE_PASSED, XDP_PASS);
	}

	// The low bits of flags are the action when the queue has no socket.
	long action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (action == XDP_REDIRECT)
		return count(COUNTER_REDIRECTED, XDP_REDIRECT);
	return count(COUNTER_NO_SOCKET, (int)action);
}

// No GPL-only helper is used, so the kernel accepts the crate's own licence.
char LICENSE[] SEC("license") = "Apache-2.0";
