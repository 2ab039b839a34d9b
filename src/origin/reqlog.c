/* sluice-origin --log: the record stream the integration specs read to see
 * exactly what reached the origin (requests, partial requests, connections). */
#include "origin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int sl_origin_log_open(struct sl_origin *o, const char *path)
{
    o->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return o->log_fd < 0 ? -1 : 0;
}

/* One writev per record: with O_APPEND a reader never sees a record's header
 * without its bytes unless the disk is full. */
static void write_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "sluice-origin: log: write failed: %s\n", strerror(errno));
            return;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

void sl_origin_log_record(struct sl_origin *o, const char *kind, const char *data, size_t len)
{
    if (o->log_fd < 0)
        return;
    char line[96];
    int n = snprintf(line, sizeof line, "--- sluice-origin %s %zu\n", kind, len);
    struct iovec iov[3] = {
        { .iov_base = line, .iov_len = (size_t)n },
        { .iov_base = (void *)data, .iov_len = len },
        { .iov_base = "\n", .iov_len = 1 },
    };
    write_all(o->log_fd, iov, 3);
}

void sl_origin_log_connection(struct sl_origin *o)
{
    if (o->log_fd < 0)
        return;
    static const char line[] = "--- sluice-origin connection\n";
    struct iovec iov = { .iov_base = (void *)line, .iov_len = sizeof line - 1 };
    write_all(o->log_fd, &iov, 1);
}
