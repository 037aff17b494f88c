/*
 * cpg_member GROUP: joins GROUP through libcpg, prints "joined" once its own join is
 * delivered, and stays a member until its stdin closes. A process for the tools to list.
 */
#include <corosync/cpg.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int joined;

static void confchg(cpg_handle_t h, const struct cpg_name *group,
		    const struct cpg_address *members, size_t n_members,
		    const struct cpg_address *left, size_t n_left,
		    const struct cpg_address *join, size_t n_join)
{
	(void)h; (void)group; (void)members; (void)n_members;
	(void)left; (void)n_left;
	for (size_t i = 0; i < n_join; i++)
		if (join[i].pid == (uint32_t)getpid())
			joined = 1;
}

int main(int argc, char **argv)
{
	cpg_handle_t h;
	cpg_callbacks_t cb = {.cpg_confchg_fn = confchg};
	struct cpg_name name;
	int fd;
	if (argc != 2 || strlen(argv[1]) >= CPG_MAX_NAME_LENGTH) {
		fprintf(stderr, "usage: cpg_member GROUP\n");
		return 2;
	}
	name.length = strlen(argv[1]);
	memcpy(name.value, argv[1], name.length);
	if (cpg_initialize(&h, &cb) != CS_OK || cpg_join(h, &name) != CS_OK ||
	    cpg_fd_get(h, &fd) != CS_OK) {
		fprintf(stderr, "cpg_member: cannot join %s\n", argv[1]);
		return 1;
	}
	while (!joined) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 1000);
		if (cpg_dispatch(h, CS_DISPATCH_ALL) != CS_OK)
			return 1;
	}
	printf("joined\n");
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof(buf)) > 0)
		;
	cpg_finalize(h);
	return 0;
}
