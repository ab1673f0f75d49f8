/*
 * dnsc: the resolver CLI of the client images. Built twice, against glibc and
 * against musl, so each image exercises its libc's own stub resolver.
 *
 *   dnsc sleep                 wait until SIGTERM/SIGINT (the pod's main process)
 *   dnsc resolve NAME [4|6]    getaddrinfo(NAME); prints each address and the
 *                              elapsed time; exit 0 on success, 2 on failure
 *   dnsc cat FILE              copies FILE to stdout (the musl image has no cat)
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig) { _exit(sig == SIGTERM ? 0 : 1); }

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int cat(const char *path) {
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");
	if (!f) {
		perror(path);
		return 1;
	}
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
	fclose(f);
	return 0;
}

static int resolve(const char *name, const char *family) {
	struct addrinfo hints, *res = NULL, *ai;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC; /* A and AAAA in parallel, as applications do */
	if (family && strcmp(family, "4") == 0) hints.ai_family = AF_INET;
	if (family && strcmp(family, "6") == 0) hints.ai_family = AF_INET6;
	hints.ai_socktype = SOCK_STREAM;
	double start = now_ms();
	int rc = getaddrinfo(name, NULL, &hints, &res);
	double elapsed = now_ms() - start;
	if (rc != 0) {
		printf("error %s elapsed_ms=%.0f\n", gai_strerror(rc), elapsed);
		return 2;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *addr = ai->ai_family == AF_INET
			? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
			: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		if (inet_ntop(ai->ai_family, addr, buf, sizeof buf)) printf("address %s\n", buf);
	}
	printf("ok elapsed_ms=%.0f\n", elapsed);
	freeaddrinfo(res);
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "sleep") == 0) {
		signal(SIGTERM, on_signal);
		signal(SIGINT, on_signal);
		for (;;) pause();
	}
	if (argc >= 3 && strcmp(argv[1], "resolve") == 0)
		return resolve(argv[2], argc >= 4 ? argv[3] : NULL);
	if (argc >= 3 && strcmp(argv[1], "cat") == 0) return cat(argv[2]);
	fprintf(stderr, "usage: dnsc sleep | dnsc resolve NAME [4|6] | dnsc cat FILE\n");
	return 64;
}
