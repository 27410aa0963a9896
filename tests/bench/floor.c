/* The floor for tests/bench/floor: an SMTP responder that does only what
   smtp-bench's plain session needs and nothing a real qmail-smtpd must
   (no control files, no environment, no checks, no logging, no Received
   header): greeting, EHLO, MAIL, RCPT, DATA through qmail-queue
   ($QMAILQUEUE, started with vfork and exec as qmail does: message on
   fd 0, envelope on fd 1), QUIT. What a session with it costs is what
   the machine costs: tcpserver's fork, two execs and glibc's start-up in
   each, the round trips. Not a server: it trusts its client. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

static char in[65536];
static size_t have;

/* One line (with its LF) into out; -1 at EOF. */
static long line(char *out, size_t max) {
  for (;;) {
    char *nl = memchr(in, '\n', have);
    if (nl) {
      size_t n = (size_t)(nl - in) + 1;
      size_t c = n < max ? n : max;
      memcpy(out, in, c);
      memmove(in, nl + 1, have - n);
      have -= n;
      return (long)c;
    }
    if (have == sizeof in) have = 0; /* an overlong line: dropped */
    ssize_t r = read(0, in + have, sizeof in - have);
    if (r <= 0) return -1;
    have += (size_t)r;
  }
}

static void put(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(1, s, n);
    if (w <= 0) exit(1);
    s += w;
    n -= (size_t)w;
  }
}

static void putfd(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/* The address between < and > of a MAIL or RCPT line. */
static void addr(char *l, char *out, size_t max) {
  char *a = strchr(l, '<'), *b = a ? strchr(a, '>') : 0;
  size_t n = (a && b) ? (size_t)(b - a - 1) : 0;
  if (n >= max) n = max - 1;
  memcpy(out, a ? a + 1 : "", n);
  out[n] = 0;
}

int main(void) {
  char l[1024], from[256] = "", to[256] = "", env[600];
  put("220 localhost ESMTP\r\n");
  for (;;) {
    long n = line(l, sizeof l - 1);
    if (n < 0) return 0;
    l[n] = 0;
    if (!strncasecmp(l, "EHLO", 4)) {
      put("250-localhost\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    } else if (!strncasecmp(l, "MAIL", 4)) {
      addr(l, from, sizeof from);
      put("250 ok\r\n");
    } else if (!strncasecmp(l, "RCPT", 4)) {
      addr(l, to, sizeof to);
      put("250 ok\r\n");
    } else if (!strncasecmp(l, "DATA", 4)) {
      int m[2], e[2], st = 0;
      const char *q = getenv("QMAILQUEUE");
      if (!q || pipe(m) || pipe(e)) return 1;
      pid_t pid = vfork();
      if (pid == 0) {
        dup2(m[0], 0);
        dup2(e[0], 1);
        close(m[0]); close(m[1]); close(e[0]); close(e[1]);
        execl(q, q, (char *)0);
        _exit(120);
      }
      close(m[0]);
      close(e[0]);
      put("354 go ahead\r\n");
      for (;;) {
        n = line(l, sizeof l);
        if (n < 0) return 1;
        if (n >= 2 && l[0] == '.' && (l[1] == '\r' || l[1] == '\n')) break;
        if (l[0] == '.') putfd(m[1], l + 1, (size_t)n - 1);
        else putfd(m[1], l, (size_t)n);
      }
      close(m[1]);
      size_t k = 0;
      env[k++] = 'F';
      memcpy(env + k, from, strlen(from) + 1); k += strlen(from) + 1;
      env[k++] = 'T';
      memcpy(env + k, to, strlen(to) + 1); k += strlen(to) + 1;
      env[k++] = 0;
      putfd(e[1], env, k);
      close(e[1]);
      if (pid < 0 || waitpid(pid, &st, 0) != pid) st = -1;
      put(st == 0 ? "250 ok\r\n" : "451 qq failure\r\n");
    } else if (!strncasecmp(l, "QUIT", 4)) {
      put("221 localhost\r\n");
      return 0;
    } else {
      put("502 unimplemented\r\n");
    }
  }
}
