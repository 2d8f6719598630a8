#include "startfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"

int startfile_read(const char *key, const char *path, size_t max_mib, char **out, size_t *len,
                   unsigned *mode, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errbuf_set(err, errlen, "%s: %s: %s", key, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return errbuf_set(err, errlen, "%s: %s: not a regular file", key, path);
    }
    if ((unsigned long long)st.st_size > (unsigned long long)max_mib << 20) {
        close(fd);
        return errbuf_set(err, errlen, "%s: %s: larger than %zu MiB", key, path, max_mib);
    }
    char *text = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    ssize_t n = 1;
    while (text && got < (size_t)st.st_size &&
           ((n = read(fd, text + got, (size_t)st.st_size - got)) > 0 || (n < 0 && errno == EINTR)))
        got += n > 0 ? (size_t)n : 0;
    int read_errno = errno;
    close(fd);
    if (!text)
        return errbuf_set(err, errlen, "%s: %s: out of memory", key, path);
    if (n < 0) {
        explicit_bzero(text, got);
        free(text);
        return errbuf_set(err, errlen, "%s: %s: %s", key, path, strerror(read_errno));
    }
    text[got] = '\0';
    *out = text;
    *len = got;
    *mode = (unsigned)(st.st_mode & 07777);
    return 0;
}
