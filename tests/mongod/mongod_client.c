/*
 * mongod_client.c — the mock mongod's ports and control line (see the .h).
 */
#include "mongod_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int mongod_read_int(const char *name)
{
    const char *dir = getenv("PERSISTOR_MONGOD_DIR");
    char path[4200];
    int v = 0;
    if (dir == NULL)
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

const char *mongod_control(const char *fmt, ...)
{
    static char reply[65536];
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    int port = mongod_read_int("control_port");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* The server answers control lines between wire requests: one slow
     * request (a big aggregate on a loaded machine) delays the answer. */
    struct timeval tv = {60, 0};
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || port == 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
        if (fd >= 0)
            close(fd);
        snprintf(reply, sizeof reply, "error control port %d unreachable", port);
        return reply;
    }
    size_t n = 0;
    while (n + 1 < sizeof reply) {
        ssize_t r = read(fd, reply + n, sizeof reply - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(reply, '\n', n) != NULL)
            break;
    }
    close(fd);
    reply[n] = '\0';
    reply[strcspn(reply, "\n")] = '\0';
    return reply;
}
