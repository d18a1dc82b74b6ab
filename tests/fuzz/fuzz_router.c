/* fuzz_router.c: libFuzzer driver for request routing (src/router.c).
 *
 * Every request's path and method reach router_match before anything else,
 * so it must survive any string and give answers that agree with the route
 * table: a match is a mounted route with that method whose pattern, with the
 * {id} put back, is exactly the path; a 405 names methods that do not
 * include the one asked; a 404 is a path no mounted route has. The Allow
 * header builder must stay inside any buffer size, and router_method must
 * map any name to exactly one M_* bit.
 *
 * Input: byte 0 = method selector, byte 1 = mounted services, byte 2 = Allow
 * buffer size, byte 3 = Allow method bits, the rest is the path (up to its
 * first NUL, as libmicrohttpd hands it over) and, after a NUL, a method name.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -iquote src -D_GNU_SOURCE \
 *     tests/fuzz/fuzz_router.c src/router.c -o fuzz_router
 *   ./fuzz_router tests/fuzz/corpus/router */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "router.h"
#include "banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "fuzz_router: invariant failed: %s (line %d)\n", #c,       \
			        __LINE__);                                                         \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define ALL_METHODS (M_GET | M_HEAD | M_POST | M_DELETE | M_PUT | M_PATCH | M_OPTIONS | M_OTHER)

/* pat with its {id} (at most one) replaced by id, into out; 0 or -1 when too long. */
static int expand(const char *pat, const char *id, char *out, size_t n)
{
	const char *brace = strstr(pat, "{id}");
	int w;

	if (!brace)
		w = snprintf(out, n, "%s", pat);
	else
		w = snprintf(out, n, "%.*s%s%s", (int)(brace - pat), pat, id, brace + 4);
	return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* Would a route with this pattern take this path (independent of router.c's matcher)? */
static int pattern_takes(const char *pat, const char *path)
{
	const char *brace = strstr(pat, "{id}");
	size_t pre, post, plen = strlen(path);
	const char *id;

	if (!brace)
		return !strcmp(pat, path);
	pre = (size_t)(brace - pat);
	post = strlen(brace + 4);
	if (plen < pre + post + 1 || memcmp(pat, path, pre) ||
	    memcmp(brace + 4, path + plen - post, post))
		return 0;
	id = path + pre;
	/* the id is one non-empty segment that fits struct route_match.id */
	return memchr(id, '/', plen - pre - post) == NULL &&
	       plen - pre - post < sizeof(((struct route_match *)0)->id);
}

static int route_answers(const struct route *r, unsigned method)
{
	return r->method == method || (r->method == M_GET && method == M_HEAD);
}

static void check_match(const char *path, unsigned method, unsigned services)
{
	struct route_match m;
	unsigned allowed = 0;
	const struct route *first = NULL;
	int first_legacy = 0, any = 0;
	int rc;

	memset(&m, 0xa5, sizeof(m));
	rc = router_match(path, method, services, &m);
	CHECK(rc == 1 || rc == 0 || rc == -1);
	CHECK(memchr(m.id, 0, sizeof(m.id)) != NULL);

	/* the answer the table gives, computed the slow way */
	for (size_t i = 0; i < router_n_routes; i++) {
		const struct route *r = &router_routes[i];
		int plain, legacy;

		if (r->services && !(r->services & services))
			continue;
		plain = pattern_takes(r->path, path);
		legacy = !plain && r->legacy && pattern_takes(r->legacy, path);
		if (!plain && !legacy)
			continue;
		any = 1;
		allowed |= r->method | (r->method == M_GET ? M_HEAD : 0);
		if (!first && route_answers(r, method)) {
			first = r;
			first_legacy = legacy;
		}
	}
	CHECK(m.allowed == allowed);
	CHECK((m.allowed & ~ALL_METHODS) == 0);
	if (rc == 1) {
		char again[2048];

		CHECK(m.route == first);
		CHECK(m.route >= router_routes && m.route < router_routes + router_n_routes);
		CHECK(route_answers(m.route, method));
		CHECK(!m.route->services || (m.route->services & services));
		CHECK(m.legacy == first_legacy);
		CHECK(!m.legacy || m.route->legacy);
		/* the pattern with the id put back is the path, byte for byte */
		CHECK(expand(m.legacy ? m.route->legacy : m.route->path, m.id, again,
			     sizeof(again)) == 0);
		CHECK(!strcmp(again, path));
		if (strstr(m.route->path, "{id}"))
			CHECK(m.id[0] && !strchr(m.id, '/'));
		else
			CHECK(m.id[0] == 0);
	} else if (rc == 0) {
		CHECK(any && !first);
		CHECK(m.route == NULL);
		CHECK(m.allowed != 0);
		CHECK(!(m.allowed & method) || method == 0);
	} else {
		CHECK(!any);
		CHECK(m.route == NULL && m.allowed == 0);
	}
}

static void check_allow(unsigned methods, size_t n)
{
	static const char *names[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"};
	char *out = malloc(n); /* exact size: ASan sees any write past it */
	char full[128];
	size_t len;

	CHECK(out);
	router_allow_header(methods, out, n);
	len = strnlen(out, n);
	CHECK(len < n);
	/* what a big enough buffer gets */
	router_allow_header(methods, full, sizeof(full));
	CHECK(strlen(full) < sizeof(full));
	/* a small buffer gets a prefix of whole names: the full text cut at ", " or its
	 * end, or nothing when not even the first name fits */
	CHECK(!strncmp(out, full, len));
	CHECK(len == 0 || full[len] == 0 || !strncmp(full + len, ", ", 2));
	/* the full text lists exactly the named methods, in bit order */
	{
		char expect[128];
		size_t e = 0;

		expect[0] = 0;
		for (int i = 0; i < 7; i++)
			if (methods & (1u << i))
				e += (size_t)snprintf(expect + e, sizeof(expect) - e, "%s%s",
						      e ? ", " : "", names[i]);
		CHECK(!strcmp(expect, full));
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned methods[] = {M_GET,   M_HEAD,    M_POST,  M_DELETE, M_PUT,
					   M_PATCH, M_OPTIONS, M_OTHER, 0};
	unsigned method, services;
	size_t allow_n;
	char *path, *name;
	const char *nul;
	size_t plen;

	if (size < 4)
		return 0;
	method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	services = data[1] & SVC_ALL;
	allow_n = 1 + data[2] % 100;
	check_allow(data[3], allow_n);
	data += 4;
	size -= 4;

	nul = memchr(data, 0, size);
	plen = nul ? (size_t)(nul - (const char *)data) : size;
	path = malloc(plen + 1);
	CHECK(path);
	memcpy(path, data, plen);
	path[plen] = 0;
	check_match(path, method, services);
	check_match(path, method, SVC_ALL);

	/* the method name after the NUL: one bit, and M_OTHER for any unknown name */
	if (nul) {
		size_t nlen = size - plen - 1;
		unsigned m;

		name = malloc(nlen + 1);
		CHECK(name);
		memcpy(name, nul + 1, nlen);
		name[nlen] = 0;
		m = router_method(name);
		CHECK(m && !(m & (m - 1)) && (m & ALL_METHODS));
		if (m != M_OTHER) {
			char allow[16];
			router_allow_header(m, allow, sizeof(allow));
			CHECK(!strcmp(allow, name));
		}
		check_match(path, m, services);
		free(name);
	}
	free(path);
	return 0;
}
