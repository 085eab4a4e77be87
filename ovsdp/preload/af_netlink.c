/* ovsdp's netlink preload library: AF_NETLINK generic netlink and netfilter
 * sockets of an unmodified program, carried to the ovsdp daemon.
 *
 * Loaded with LD_PRELOAD (`ovsdp run -- CMD`), it replaces each
 * socket(AF_NETLINK, *, NETLINK_GENERIC or NETLINK_NETFILTER) by a connection
 * to the daemon's AF_UNIX SOCK_SEQPACKET socket (docs/protocol.md, section 1;
 * a NETLINK_NETFILTER one says so first, section 9) and translates
 * the calls whose meaning differs.  It holds no datapath logic; it only makes
 * the connection behave as net/netlink/af_netlink.c makes a netlink socket
 * behave:
 *
 *  - The kernel has processed a request when sendmsg() returns.  Each
 *    datagram sent gets a barrier (NLMSG_NOOP with NLM_F_ACK) after its last
 *    message; sendmsg() returns once the daemon has acked it, and what
 *    arrived before the ack is kept in a queue that recv() reads first.
 *  - A dump never makes a reader wait on Linux: while a dump is open, recv()
 *    waits for the daemon's next part instead of failing with EAGAIN.
 *  - bind()/connect()/getsockname() give and take the daemon's port id;
 *    SOL_NETLINK options travel as OVSDP_MSG_SOCKOPT messages and return
 *    the daemon's errno; getsockopt() answers SO_DOMAIN/SO_TYPE/SO_PROTOCOL
 *    and the SOL_NETLINK options; NLMSG_OVERRUN becomes recv() ENOBUFS.
 *  - poll()/ppoll()/epoll_wait() report a socket readable while its queue
 *    holds something; close()/dup() keep the table of sockets right; a
 *    fork()ed child keeps working.
 *
 * Every other socket (NETLINK_ROUTE included) is left alone.  The limits are
 * listed in docs/protocol.md (section 8).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

/* ovsdp's own wire numbers (ovsdp/uapi/ovsdp.py). */
#define OVSDP_MSG_SOCKOPT 0x0F
#define OVSDP_SO_BIND_PORTID 0x4F02
#define OVSDP_SO_PROTOCOL 0x4F03
#define INIT_MSGS_MAX 64         /* what init_msgs() may put in front of a request */
#define OVSDP_DEFAULT_SOCKET "/run/ovsdp/ovsdp.sock"
#define OVSDP_READ_ONLY_SUFFIX ".ro"
#define OVSDP_MAX_DATAGRAM 131072

/* Library requests carry this nlmsg_pid; the daemon echoes the request
 * header in its ack, which is how their acks are told from the program's. */
#define LIB_PID 0x4F564450u      /* "PDVO" */

#define MAX_FDS 65536            /* sockets on fds beyond this are refused */
#define MAX_GROUPS 1024          /* memberships tracked for getsockname/LIST_MEMBERSHIPS */
#define RBUF_SIZE (256 * 1024)   /* larger than anything the daemon sends */
#define DEFAULT_RCVBUF 212992    /* Linux's net.core.rmem_default */

struct qent {                    /* one datagram (or a loss) waiting for recv() */
    struct qent *next;
    size_t len;
    int enobufs;                 /* a loss: recv() fails once with ENOBUFS */
    unsigned char data[];
};

struct nls {
    pthread_mutex_t lock;        /* held while sending, waiting, or queue work */
    int refs;                    /* fds referring to this socket (dup) */
    int type, protocol;          /* as the program created it */
    uint32_t portid;
    int bound;                   /* the port id is fixed */
    uint32_t groups[MAX_GROUPS / 32];
    int ext_ack, cap_ack;        /* as last set (the daemon applies them) */
    int no_enobufs, pktinfo, broadcast_error, listen_all_nsid, strict_chk;
    int sent_init;               /* the Linux defaults were sent */
    uint32_t lseq;               /* sequence numbers of library requests */
    struct qent *head, *tail;
    size_t qbytes;
    size_t rcvbuf;               /* the queue's bound */
    int dump_open;
    uint32_t dump_seq;
    uint64_t stolen_ack;         /* (seq << 32 | error+1) of an ack another thread read */
};

static struct nls *table[MAX_FDS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

struct epreg {                   /* an ovsdp socket registered in an epoll set */
    struct epreg *next;
    int epfd, fd;
    struct epoll_event ev;
};
static struct epreg *epregs;
static int epreg_count;          /* read without the lock: a hint */

/* ------------------------------------------------------------ libc calls */

#define REAL(name) real_##name
#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
DECLARE_REAL(int, socket, int, int, int);
DECLARE_REAL(int, connect, int, const struct sockaddr *, socklen_t);
DECLARE_REAL(int, bind, int, const struct sockaddr *, socklen_t);
DECLARE_REAL(int, getsockname, int, struct sockaddr *, socklen_t *);
DECLARE_REAL(int, getpeername, int, struct sockaddr *, socklen_t *);
DECLARE_REAL(int, setsockopt, int, int, int, const void *, socklen_t);
DECLARE_REAL(int, getsockopt, int, int, int, void *, socklen_t *);
DECLARE_REAL(ssize_t, sendmsg, int, const struct msghdr *, int);
DECLARE_REAL(ssize_t, recvmsg, int, struct msghdr *, int);
DECLARE_REAL(int, close, int);
DECLARE_REAL(int, dup, int);
DECLARE_REAL(int, dup2, int, int);
DECLARE_REAL(int, dup3, int, int, int);
DECLARE_REAL(int, fcntl, int, int, ...);
DECLARE_REAL(int, poll, struct pollfd *, nfds_t, int);
DECLARE_REAL(int, ppoll, struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
DECLARE_REAL(int, epoll_ctl, int, int, int, struct epoll_event *);
DECLARE_REAL(int, epoll_wait, int, struct epoll_event *, int, int);
DECLARE_REAL(int, epoll_pwait, int, struct epoll_event *, int, int, const sigset_t *);
DECLARE_REAL(ssize_t, read, int, void *, size_t);
DECLARE_REAL(ssize_t, write, int, const void *, size_t);
DECLARE_REAL(ssize_t, readv, int, const struct iovec *, int);
DECLARE_REAL(ssize_t, writev, int, const struct iovec *, int);
DECLARE_REAL(ssize_t, recv, int, void *, size_t, int);
DECLARE_REAL(ssize_t, recvfrom, int, void *, size_t, int, struct sockaddr *, socklen_t *);
DECLARE_REAL(ssize_t, send, int, const void *, size_t, int);
DECLARE_REAL(ssize_t, sendto, int, const void *, size_t, int, const struct sockaddr *, socklen_t);

static void *resolve(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "ovsdp-netlink: cannot find %s in libc\n", name);
        abort();
    }
    return p;
}

#define NEED(name) \
    (__atomic_load_n(&real_##name, __ATOMIC_ACQUIRE) ? (void) 0 \
     : __atomic_store_n((void **) &real_##name, resolve(#name), __ATOMIC_RELEASE))

static struct nls *lookup(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return NULL;
    return __atomic_load_n(&table[fd], __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------- fork safety */

static void atfork_prepare(void) { pthread_mutex_lock(&table_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&table_lock); }
static void atfork_child(void)
{
    /* Another thread of the parent may have held a socket's lock: the child
     * has only this thread, so every lock starts free again. */
    for (int fd = 0; fd < MAX_FDS; fd++) {
        struct nls *s = table[fd];
        if (s)
            pthread_mutex_init(&s->lock, NULL);
    }
    pthread_mutex_init(&table_lock, NULL);
}

static pthread_key_t rbuf_key;

__attribute__((constructor)) static void init(void)
{
    pthread_key_create(&rbuf_key, free);
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static unsigned char *thread_rbuf(void)
{
    unsigned char *b = pthread_getspecific(rbuf_key);
    if (!b) {
        b = malloc(RBUF_SIZE);
        if (b)
            pthread_setspecific(rbuf_key, b);
    }
    return b;
}

/* ------------------------------------------------------------- the table */

static void queue_free(struct nls *s)
{
    struct qent *q = s->head;
    while (q) {
        struct qent *n = q->next;
        free(q);
        q = n;
    }
    s->head = s->tail = NULL;
    s->qbytes = 0;
}

static void unref(struct nls *s)
{
    if (--s->refs == 0) {
        queue_free(s);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
}

/* Forget fd (it is being closed or replaced); the caller holds table_lock. */
static void forget_locked(int fd)
{
    struct nls *s = lookup(fd);
    struct epreg **pp = &epregs;
    while (*pp) {                /* registrations of fd, and of fd as an epoll set */
        struct epreg *r = *pp;
        if ((s && r->fd == fd) || r->epfd == fd) {
            *pp = r->next;
            free(r);
            epreg_count--;
        } else {
            pp = &r->next;
        }
    }
    if (s) {
        __atomic_store_n(&table[fd], NULL, __ATOMIC_RELEASE);
        unref(s);
    }
}

static void forget(int fd)
{
    if (fd < 0 || fd >= MAX_FDS)
        return;
    if (!lookup(fd) && !__atomic_load_n(&epreg_count, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&table_lock);
    forget_locked(fd);
    pthread_mutex_unlock(&table_lock);
}

static void share(int oldfd, int newfd)
{
    if (newfd < 0 || newfd >= MAX_FDS)
        return;
    pthread_mutex_lock(&table_lock);
    forget_locked(newfd);
    struct nls *s = lookup(oldfd);
    if (s) {
        s->refs++;
        __atomic_store_n(&table[newfd], s, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&table_lock);
}

/* -------------------------------------------------------------- messages */

static uint32_t align4(uint32_t n) { return (n + 3) & ~3u; }

static void put_hdr(unsigned char *p, uint32_t len, uint16_t type, uint16_t flags, uint32_t seq)
{
    struct nlmsghdr h = { .nlmsg_len = len, .nlmsg_type = type, .nlmsg_flags = flags,
                          .nlmsg_seq = seq, .nlmsg_pid = LIB_PID };
    memcpy(p, &h, sizeof h);
}

/* The ack of a library request: NLMSG_ERROR echoing a header with LIB_PID. */
static int lib_ack(const unsigned char *p, size_t n, uint32_t *seq, int *err, uint32_t *to,
                   uint16_t *type)
{
    struct nlmsghdr h, inner;
    int32_t e;
    if (n < NLMSG_HDRLEN + 4 + NLMSG_HDRLEN)
        return 0;
    memcpy(&h, p, sizeof h);
    if (h.nlmsg_type != NLMSG_ERROR)
        return 0;
    memcpy(&inner, p + NLMSG_HDRLEN + 4, sizeof inner);
    if (inner.nlmsg_pid != LIB_PID)
        return 0;
    memcpy(&e, p + NLMSG_HDRLEN, 4);
    *seq = inner.nlmsg_seq;
    *err = e < 0 ? -e : e;
    *to = h.nlmsg_pid;
    *type = inner.nlmsg_type;
    return 1;
}

static int is_overrun(const unsigned char *p, size_t n)
{
    struct nlmsghdr h;
    if (n < NLMSG_HDRLEN)
        return 0;
    memcpy(&h, p, sizeof h);
    return h.nlmsg_type == NLMSG_OVERRUN;
}

/* Does this datagram end the open dump (NLMSG_DONE or NLMSG_ERROR of its seq)? */
static int ends_dump(const unsigned char *p, size_t n, uint32_t seq)
{
    size_t off = 0;
    while (off + NLMSG_HDRLEN <= n) {
        struct nlmsghdr h;
        memcpy(&h, p + off, sizeof h);
        if (h.nlmsg_len < NLMSG_HDRLEN || off + h.nlmsg_len > n)
            break;
        if (h.nlmsg_seq == seq && (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR))
            return 1;
        off += align4(h.nlmsg_len);
    }
    return 0;
}

static void enqueue(struct nls *s, const unsigned char *p, size_t n, int enobufs)
{
    if (enobufs && (s->no_enobufs || (s->tail && s->tail->enobufs)))
        return;
    if (!enobufs && s->qbytes + n > 2 * s->rcvbuf) {
        enqueue(s, NULL, 0, 1);  /* a full receive buffer drops, as on Linux */
        return;
    }
    struct qent *q = malloc(sizeof *q + n);
    if (!q) {
        if (!enobufs)
            enqueue(s, NULL, 0, 1);
        return;
    }
    q->next = NULL;
    q->len = n;
    q->enobufs = enobufs;
    if (n)
        memcpy(q->data, p, n);
    if (s->tail)
        s->tail->next = q;
    else
        s->head = q;
    s->tail = q;
    s->qbytes += n;
}

/* -------------------------------------------------------------- transport */

static int wait_fd(int fd, short events, int timeout_ms)
{
    NEED(poll);
    struct pollfd p = { .fd = fd, .events = events };
    int r = REAL(poll)(&p, 1, timeout_ms);
    return r < 0 ? -errno : r;
}

/* Send one datagram to the daemon, whatever the socket's O_NONBLOCK: the
 * kernel never makes a sender to itself wait for room either. */
static int send_all(int fd, const void *buf, size_t len)
{
    NEED(sendmsg);
    struct iovec iov = { (void *) buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    for (;;) {
        ssize_t r = REAL(sendmsg)(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wait_fd(fd, POLLOUT, -1);
            if (w < 0 && w != -EINTR)
                return -w;
            continue;
        }
        return errno == EPIPE ? ECONNRESET : errno;
    }
}

/* Read one datagram from the daemon into the queue, handling library acks
 * and losses.  Returns 0, or a positive errno (ECONNRESET at end of file).
 * When the ack of library request `want` is read, *got is set to its error+1. */
static int read_one(struct nls *s, int fd, uint32_t want, int *got, int block)
{
    NEED(recvmsg);
    unsigned char *b = thread_rbuf();
    if (!b)
        return ENOMEM;
    for (;;) {
        struct iovec iov = { b, RBUF_SIZE };
        struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n = REAL(recvmsg)(fd, &m, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && block) {
                int w = wait_fd(fd, POLLIN, 100);
                if (w < 0 && w != -EINTR)
                    return -w;
                if (w == 0 && got) {     /* another thread may have read our ack */
                    uint64_t st = __atomic_load_n(&s->stolen_ack, __ATOMIC_ACQUIRE);
                    if (st && (uint32_t) (st >> 32) == want) {
                        *got = (int) (uint32_t) st;
                        return 0;
                    }
                }
                continue;
            }
            return errno;
        }
        if (n == 0)
            return ECONNRESET;
        if (m.msg_flags & MSG_TRUNC) {   /* cannot happen with the daemon's limits */
            enqueue(s, NULL, 0, 1);
            return 0;
        }
        uint32_t seq, to;
        uint16_t type;
        int err;
        if (lib_ack(b, n, &seq, &err, &to, &type)) {
            s->portid = to;              /* every ack names the recipient's port id */
            /* It is fixed once a message went through (netlink_autobind());
             * a socket option does not fix it, nor does a bind that failed
             * (Linux lets a bind that met EADDRINUSE try another id). */
            if (type != OVSDP_MSG_SOCKOPT)
                s->bound = 1;
            if (got && seq == want)
                *got = err + 1;
            return 0;                    /* an older library ack is dropped */
        }
        if (is_overrun(b, n)) {
            enqueue(s, NULL, 0, 1);
            return 0;
        }
        if (s->dump_open && ends_dump(b, n, s->dump_seq))
            s->dump_open = 0;
        enqueue(s, b, n, 0);
        return 0;
    }
}

/* Wait for the ack of library request `seq`; returns its errno (0: acked),
 * or the transport's errno. */
static int await_ack(struct nls *s, int fd, uint32_t seq)
{
    int got = 0;
    while (!got) {
        int e = read_one(s, fd, seq, &got, 1);
        if (e)
            return e;
    }
    return got - 1;
}

/* Messages a new connection sends first: Linux's defaults where ovsdp's
 * differ (extended acks are off on a new netlink socket). */
static size_t init_msgs(struct nls *s, unsigned char *p)
{
    if (s->sent_init)
        return 0;
    s->sent_init = 1;
    size_t off = 0;
    if (s->protocol != NETLINK_GENERIC) {
        /* The connection's netlink protocol, before anything else. */
        uint32_t pv[3] = { SOL_NETLINK, OVSDP_SO_PROTOCOL, (uint32_t) s->protocol };
        put_hdr(p, NLMSG_HDRLEN + sizeof pv, OVSDP_MSG_SOCKOPT, NLM_F_REQUEST, ++s->lseq);
        memcpy(p + NLMSG_HDRLEN, pv, sizeof pv);
        off = NLMSG_HDRLEN + sizeof pv;
    }
    uint32_t v[3] = { SOL_NETLINK, NETLINK_EXT_ACK, 0 };
    put_hdr(p + off, NLMSG_HDRLEN + sizeof v, OVSDP_MSG_SOCKOPT, NLM_F_REQUEST, ++s->lseq);
    memcpy(p + off + NLMSG_HDRLEN, v, sizeof v);
    return off + NLMSG_HDRLEN + sizeof v;
}

/* A socket option, through the daemon; returns its errno. */
static int daemon_sockopt(struct nls *s, int fd, uint32_t opt, uint32_t val)
{
    unsigned char b[INIT_MSGS_MAX + 64];
    size_t off = init_msgs(s, b);
    uint32_t v[3] = { SOL_NETLINK, opt, val };
    uint32_t seq = ++s->lseq;
    put_hdr(b + off, NLMSG_HDRLEN + sizeof v, OVSDP_MSG_SOCKOPT, NLM_F_REQUEST | NLM_F_ACK, seq);
    memcpy(b + off + NLMSG_HDRLEN, v, sizeof v);
    int e = send_all(fd, b, off + NLMSG_HDRLEN + sizeof v);
    return e ? e : await_ack(s, fd, seq);
}

/* netlink_autobind(): a NOOP fixes the port id and its ack tells it. */
static int autobind(struct nls *s, int fd)
{
    if (s->bound)
        return 0;
    unsigned char b[INIT_MSGS_MAX + 64];
    size_t off = init_msgs(s, b);
    uint32_t seq = ++s->lseq;
    put_hdr(b + off, NLMSG_HDRLEN, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq);
    int e = send_all(fd, b, off + NLMSG_HDRLEN);
    return e ? e : await_ack(s, fd, seq);
}

static void set_group(struct nls *s, uint32_t g, int on)
{
    if (g == 0 || g > MAX_GROUPS)
        return;
    if (on)
        s->groups[(g - 1) / 32] |= 1u << ((g - 1) % 32);
    else
        s->groups[(g - 1) / 32] &= ~(1u << ((g - 1) % 32));
}

/* ------------------------------------------------------------------ socket */

static char *daemon_path(void)
{
    const char *p = getenv("OVSDP_SOCKET");
    return (char *) (p && *p ? p : OVSDP_DEFAULT_SOCKET);
}

static int connect_path(int fd, const char *path)
{
    NEED(connect);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(a.sun_path, path);
    int r;
    do
        r = REAL(connect)(fd, (struct sockaddr *) &a, sizeof a);
    while (r < 0 && errno == EINTR);
    return r;
}

int socket(int domain, int type, int protocol)
{
    NEED(socket);
    if (domain != AF_NETLINK || (protocol != NETLINK_GENERIC && protocol != NETLINK_NETFILTER))
        return REAL(socket)(domain, type, protocol);
    int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (base != SOCK_RAW && base != SOCK_DGRAM) {
        errno = ESOCKTNOSUPPORT;
        return -1;
    }
    int fd = REAL(socket)(AF_UNIX, SOCK_SEQPACKET | (type & (SOCK_NONBLOCK | SOCK_CLOEXEC)), 0);
    if (fd < 0)
        return -1;
    const char *path = daemon_path();
    if (connect_path(fd, path) < 0) {
        int e = errno;
        if (e == EACCES) {       /* not allowed to change things: the read-only socket */
            char ro[sizeof ((struct sockaddr_un *) 0)->sun_path + 8];
            snprintf(ro, sizeof ro, "%s%s", path, OVSDP_READ_ONLY_SUFFIX);
            if (connect_path(fd, ro) == 0)
                e = 0;
        }
        if (e) {
            static int told;
            if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
                fprintf(stderr, "ovsdp-netlink: cannot connect to the ovsdp daemon at %s: %s\n",
                        path, strerror(e));
            NEED(close);
            REAL(close)(fd);
            errno = e;
            return -1;
        }
    }
    if (fd >= MAX_FDS) {
        NEED(close);
        REAL(close)(fd);
        errno = EMFILE;
        return -1;
    }
    struct nls *s = calloc(1, sizeof *s);
    if (!s) {
        NEED(close);
        REAL(close)(fd);
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->refs = 1;
    s->type = base;
    s->protocol = protocol;
    s->rcvbuf = DEFAULT_RCVBUF;
    pthread_mutex_lock(&table_lock);
    forget_locked(fd);           /* a stale entry (the fd was closed behind our back) */
    __atomic_store_n(&table[fd], s, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&table_lock);
    return fd;
}

static int check_nladdr(const struct sockaddr *addr, socklen_t len)
{
    if (!addr || len < sizeof(struct sockaddr_nl) || addr->sa_family != AF_NETLINK)
        return EINVAL;
    return 0;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct nls *s = lookup(fd);
    NEED(bind);
    if (!s)
        return REAL(bind)(fd, addr, len);
    int e = check_nladdr(addr, len);
    if (e) {
        errno = e;
        return -1;
    }
    struct sockaddr_nl nl;
    memcpy(&nl, addr, sizeof nl);
    pthread_mutex_lock(&s->lock);
    if (s->bound && nl.nl_pid && nl.nl_pid != s->portid)
        e = EINVAL;
    else if (!s->bound && nl.nl_pid) {
        e = daemon_sockopt(s, fd, OVSDP_SO_BIND_PORTID, nl.nl_pid);
        if (!e) {
            s->portid = nl.nl_pid;
            s->bound = 1;
        }
    } else {
        e = autobind(s, fd);
    }
    /* nl_groups replaces the memberships of groups 1..32. */
    for (uint32_t g = 1; !e && g <= 32; g++) {
        int want = (nl.nl_groups >> (g - 1)) & 1;
        int have = (s->groups[0] >> (g - 1)) & 1;
        if (want != have) {
            e = daemon_sockopt(s, fd, want ? NETLINK_ADD_MEMBERSHIP : NETLINK_DROP_MEMBERSHIP, g);
            if (!e)
                set_group(s, g, want);
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct nls *s = lookup(fd);
    NEED(connect);
    if (!s)
        return REAL(connect)(fd, addr, len);
    if (addr && len >= sizeof(sa_family_t) && addr->sa_family == AF_UNSPEC)
        return 0;                /* disconnect: the kernel stays the peer */
    int e = check_nladdr(addr, len);
    if (!e) {
        struct sockaddr_nl nl;
        memcpy(&nl, addr, sizeof nl);
        if (nl.nl_pid || nl.nl_groups)
            e = EOPNOTSUPP;      /* only the kernel (ovsdp) can be the peer */
    }
    if (!e) {
        pthread_mutex_lock(&s->lock);
        e = autobind(s, fd);
        pthread_mutex_unlock(&s->lock);
    }
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

static int put_nladdr(struct sockaddr *addr, socklen_t *len, uint32_t pid, uint32_t groups)
{
    if (!addr || !len) {
        errno = EFAULT;
        return -1;
    }
    struct sockaddr_nl nl = { .nl_family = AF_NETLINK, .nl_pid = pid, .nl_groups = groups };
    memcpy(addr, &nl, *len < sizeof nl ? *len : sizeof nl);
    *len = sizeof nl;
    return 0;
}

int getsockname(int fd, struct sockaddr *addr, socklen_t *len)
{
    struct nls *s = lookup(fd);
    NEED(getsockname);
    if (!s)
        return REAL(getsockname)(fd, addr, len);
    pthread_mutex_lock(&s->lock);
    uint32_t pid = s->bound ? s->portid : 0, groups = s->groups[0];
    pthread_mutex_unlock(&s->lock);
    return put_nladdr(addr, len, pid, groups);
}

int getpeername(int fd, struct sockaddr *addr, socklen_t *len)
{
    NEED(getpeername);
    if (!lookup(fd))
        return REAL(getpeername)(fd, addr, len);
    return put_nladdr(addr, len, 0, 0);
}

/* ------------------------------------------------------------ socket options */

static int *local_opt(struct nls *s, int opt)
{
    switch (opt) {
    case NETLINK_PKTINFO: return &s->pktinfo;
    case NETLINK_BROADCAST_ERROR: return &s->broadcast_error;
    case NETLINK_NO_ENOBUFS: return &s->no_enobufs;
    case NETLINK_LISTEN_ALL_NSID: return &s->listen_all_nsid;
    case NETLINK_GET_STRICT_CHK: return &s->strict_chk;
    case NETLINK_CAP_ACK: return &s->cap_ack;
    case NETLINK_EXT_ACK: return &s->ext_ack;
    default: return NULL;
    }
}

int setsockopt(int fd, int level, int opt, const void *val, socklen_t len)
{
    struct nls *s = lookup(fd);
    NEED(setsockopt);
    if (!s || level != SOL_NETLINK) {
        int r = REAL(setsockopt)(fd, level, opt, val, len);
        if (s && r == 0 && level == SOL_SOCKET && (opt == SO_RCVBUF || opt == SO_RCVBUFFORCE)
            && val && len >= sizeof(int)) {
            int v;
            memcpy(&v, val, sizeof v);
            pthread_mutex_lock(&s->lock);
            s->rcvbuf = v > DEFAULT_RCVBUF ? (size_t) v : DEFAULT_RCVBUF;
            pthread_mutex_unlock(&s->lock);
        }
        return r;
    }
    int v = 0, e = 0;
    if (len >= sizeof(int)) {    /* netlink_setsockopt(): a shorter value reads as 0 */
        if (!val) {
            errno = EFAULT;
            return -1;
        }
        memcpy(&v, val, sizeof v);
    }
    pthread_mutex_lock(&s->lock);
    switch (opt) {
    case NETLINK_ADD_MEMBERSHIP:
    case NETLINK_DROP_MEMBERSHIP:
        if (v == 0) {
            e = EINVAL;
            break;
        }
        e = daemon_sockopt(s, fd, opt, (uint32_t) v);
        if (!e)
            set_group(s, (uint32_t) v, opt == NETLINK_ADD_MEMBERSHIP);
        break;
    case NETLINK_EXT_ACK:
    case NETLINK_CAP_ACK:
        e = daemon_sockopt(s, fd, opt, v != 0);
        if (!e)
            *local_opt(s, opt) = v != 0;
        break;
    case NETLINK_NO_ENOBUFS:     /* the library drops NLMSG_OVERRUN itself */
        s->no_enobufs = v != 0;
        break;
    case NETLINK_PKTINFO:
    case NETLINK_BROADCAST_ERROR:
    case NETLINK_LISTEN_ALL_NSID:
    case NETLINK_GET_STRICT_CHK:
        /* Remembered for getsockopt; no effect on ovsdp's families
         * (docs/protocol.md, section 8). */
        *local_opt(s, opt) = v != 0;
        break;
    default:
        e = ENOPROTOOPT;
    }
    pthread_mutex_unlock(&s->lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

static int put_int(void *val, socklen_t *len, int v)
{
    if (!len || *len < sizeof(int)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(val, &v, sizeof v);
    *len = sizeof v;
    return 0;
}

int getsockopt(int fd, int level, int opt, void *val, socklen_t *len)
{
    struct nls *s = lookup(fd);
    NEED(getsockopt);
    if (!s)
        return REAL(getsockopt)(fd, level, opt, val, len);
    if (level == SOL_SOCKET) {
        switch (opt) {
        case SO_DOMAIN: return put_int(val, len, AF_NETLINK);
        case SO_TYPE: return put_int(val, len, s->type);
        case SO_PROTOCOL: return put_int(val, len, s->protocol);
        case SO_ACCEPTCONN: return put_int(val, len, 0);
        default: return REAL(getsockopt)(fd, level, opt, val, len);
        }
    }
    if (level != SOL_NETLINK) {
        errno = ENOPROTOOPT;
        return -1;
    }
    if (opt == NETLINK_LIST_MEMBERSHIPS) {
        if (!len) {
            errno = EINVAL;
            return -1;
        }
        pthread_mutex_lock(&s->lock);
        size_t words = 0;
        for (size_t i = 0; i < MAX_GROUPS / 32; i++)
            if (s->groups[i])
                words = i + 1;
        size_t need = words * 4, give = *len < need ? *len : need;
        memcpy(val, s->groups, give & ~(size_t) 3);
        pthread_mutex_unlock(&s->lock);
        *len = need;
        return 0;
    }
    int *p = local_opt(s, opt);
    if (!p) {
        errno = ENOPROTOOPT;
        return -1;
    }
    return put_int(val, len, *p);
}

/* ------------------------------------------------------------------- send */

static ssize_t nl_send(struct nls *s, int fd, const struct msghdr *msg, int flags)
{
    (void) flags;                /* the kernel never makes a sender wait: nor do we */
    if (msg->msg_name && msg->msg_namelen) {
        struct sockaddr_nl nl;
        if (check_nladdr(msg->msg_name, msg->msg_namelen)) {
            errno = EINVAL;
            return -1;
        }
        memcpy(&nl, msg->msg_name, sizeof nl);
        if (nl.nl_pid || nl.nl_groups) {
            errno = EOPNOTSUPP;  /* to another socket or a group: not on ovsdp */
            return -1;
        }
    }
    size_t total = 0;
    for (size_t i = 0; i < msg->msg_iovlen; i++)
        total += msg->msg_iov[i].iov_len;
    if (total > OVSDP_MAX_DATAGRAM) {
        errno = EMSGSIZE;
        return -1;
    }
    unsigned char *b = malloc(INIT_MSGS_MAX + total + NLMSG_HDRLEN + 4);
    if (!b) {
        errno = ENOMEM;
        return -1;
    }
    pthread_mutex_lock(&s->lock);
    size_t off = init_msgs(s, b), start = off;
    for (size_t i = 0; i < msg->msg_iovlen; i++) {
        memcpy(b + off, msg->msg_iov[i].iov_base, msg->msg_iov[i].iov_len);
        off += msg->msg_iov[i].iov_len;
    }
    /* Keep the whole messages (netlink_rcv_skb() ignores what follows a
     * malformed one) and note the first dump request. */
    size_t pos = start, end = start;
    int dump = 0;
    uint32_t dump_seq = 0;
    while (pos + NLMSG_HDRLEN <= off) {
        struct nlmsghdr h;
        memcpy(&h, b + pos, sizeof h);
        if (h.nlmsg_len < NLMSG_HDRLEN || pos + h.nlmsg_len > off)
            break;
        if (!dump && (h.nlmsg_flags & NLM_F_REQUEST) && h.nlmsg_type >= NLMSG_MIN_TYPE
            && (h.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP) {
            dump = 1;
            dump_seq = h.nlmsg_seq;
        }
        end = pos + h.nlmsg_len;
        pos += align4(h.nlmsg_len);
    }
    int e = 0;
    if (end > start || start > 0) {
        size_t barrier = align4(end);
        memset(b + end, 0, barrier - end);
        uint32_t seq = ++s->lseq;
        put_hdr(b + barrier, NLMSG_HDRLEN, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, seq);
        if (dump && !s->dump_open) {
            s->dump_open = 1;
            s->dump_seq = dump_seq;
        }
        e = send_all(fd, b, barrier + NLMSG_HDRLEN);
        if (!e)
            e = await_ack(s, fd, seq);
        if (e)
            s->dump_open = 0;
    }
    pthread_mutex_unlock(&s->lock);
    free(b);
    if (e) {
        errno = e;
        return -1;
    }
    return (ssize_t) total;
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
    struct nls *s = lookup(fd);
    NEED(sendmsg);
    if (!s)
        return REAL(sendmsg)(fd, msg, flags);
    return nl_send(s, fd, msg, flags);
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags,
               const struct sockaddr *addr, socklen_t alen)
{
    struct nls *s = lookup(fd);
    NEED(sendto);
    if (!s)
        return REAL(sendto)(fd, buf, len, flags, addr, alen);
    struct iovec iov = { (void *) buf, len };
    struct msghdr m = { .msg_name = (void *) addr, .msg_namelen = addr ? alen : 0,
                        .msg_iov = &iov, .msg_iovlen = 1 };
    return nl_send(s, fd, &m, flags);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    struct nls *s = lookup(fd);
    NEED(send);
    if (!s)
        return REAL(send)(fd, buf, len, flags);
    struct iovec iov = { (void *) buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    return nl_send(s, fd, &m, flags);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    struct nls *s = lookup(fd);
    NEED(write);
    if (!s)
        return REAL(write)(fd, buf, len);
    struct iovec iov = { (void *) buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    return nl_send(s, fd, &m, 0);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    struct nls *s = lookup(fd);
    NEED(writev);
    if (!s)
        return REAL(writev)(fd, iov, n);
    struct msghdr m = { .msg_iov = (struct iovec *) iov, .msg_iovlen = n };
    return nl_send(s, fd, &m, 0);
}

/* ------------------------------------------------------------------- recv */

/* Copy a queued datagram out as recvmsg() would. */
static ssize_t deliver(struct qent *q, struct msghdr *msg, int flags)
{
    size_t off = 0;
    for (size_t i = 0; i < msg->msg_iovlen && off < q->len; i++) {
        size_t n = msg->msg_iov[i].iov_len;
        if (n > q->len - off)
            n = q->len - off;
        memcpy(msg->msg_iov[i].iov_base, q->data + off, n);
        off += n;
    }
    msg->msg_flags = off < q->len ? MSG_TRUNC : 0;
    msg->msg_controllen = 0;
    if (msg->msg_name) {
        socklen_t l = msg->msg_namelen;
        put_nladdr(msg->msg_name, &l, 0, 0);
        msg->msg_namelen = l;
    }
    return (flags & MSG_TRUNC) ? (ssize_t) q->len : (ssize_t) off;
}

static ssize_t nl_recv(struct nls *s, int fd, struct msghdr *msg, int flags)
{
    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct qent *q = s->head;
        if (q) {
            ssize_t r = 0;
            int enobufs = q->enobufs;
            if (!enobufs)
                r = deliver(q, msg, flags);
            if (enobufs || !(flags & MSG_PEEK)) {
                s->head = q->next;
                if (!s->head)
                    s->tail = NULL;
                s->qbytes -= q->len;
                free(q);
            }
            pthread_mutex_unlock(&s->lock);
            if (enobufs) {
                errno = ENOBUFS;
                return -1;
            }
            return r;
        }
        if (!s->dump_open)
            break;
        /* A dump part is on its way: wait for it, as a dump never fails a
         * reader with EAGAIN on Linux. */
        int e = read_one(s, fd, 0, NULL, 1);
        if (e) {
            s->dump_open = 0;
            pthread_mutex_unlock(&s->lock);
            errno = e;
            return -1;
        }
    }
    pthread_mutex_unlock(&s->lock);

    /* Nothing queued and no dump: the socket itself, as the program asked. */
    NEED(recvmsg);
    for (;;) {
        ssize_t n = REAL(recvmsg)(fd, msg, flags);
        if (n <= 0)
            return n;
        unsigned char head[NLMSG_HDRLEN * 2 + 4];
        size_t got = 0;
        for (size_t i = 0; i < msg->msg_iovlen && got < sizeof head; i++) {
            size_t k = msg->msg_iov[i].iov_len;
            if (k > sizeof head - got)
                k = sizeof head - got;
            if (k > (size_t) n - got)
                k = (size_t) n - got;
            memcpy(head + got, msg->msg_iov[i].iov_base, k);
            got += k;
        }
        uint32_t seq, to;
        uint16_t type;
        int err;
        if (is_overrun(head, got)) {
            if (flags & MSG_PEEK)
                REAL(recvmsg)(fd, &(struct msghdr){0}, MSG_DONTWAIT);
            if (s->no_enobufs)
                continue;
            errno = ENOBUFS;
            return -1;
        }
        if (lib_ack(head, got, &seq, &err, &to, &type)) {
            /* The ack a sender in another thread waits for: hand it over. */
            if (flags & MSG_PEEK)
                REAL(recvmsg)(fd, &(struct msghdr){0}, MSG_DONTWAIT);
            __atomic_store_n(&s->stolen_ack, (uint64_t) seq << 32 | (uint32_t) (err + 1),
                             __ATOMIC_RELEASE);
            continue;
        }
        if (msg->msg_name) {
            socklen_t l = msg->msg_namelen;
            put_nladdr(msg->msg_name, &l, 0, 0);
            msg->msg_namelen = l;
        }
        return n;
    }
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct nls *s = lookup(fd);
    NEED(recvmsg);
    if (!s)
        return REAL(recvmsg)(fd, msg, flags);
    return nl_recv(s, fd, msg, flags);
}

ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *addr,
                 socklen_t *alen)
{
    struct nls *s = lookup(fd);
    NEED(recvfrom);
    if (!s)
        return REAL(recvfrom)(fd, buf, len, flags, addr, alen);
    struct iovec iov = { buf, len };
    struct msghdr m = { .msg_name = addr, .msg_namelen = addr && alen ? *alen : 0,
                        .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t r = nl_recv(s, fd, &m, flags);
    if (r >= 0 && addr && alen)
        *alen = m.msg_namelen;
    return r;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    struct nls *s = lookup(fd);
    NEED(recv);
    if (!s)
        return REAL(recv)(fd, buf, len, flags);
    struct iovec iov = { buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    return nl_recv(s, fd, &m, flags);
}

ssize_t read(int fd, void *buf, size_t len)
{
    struct nls *s = lookup(fd);
    NEED(read);
    if (!s)
        return REAL(read)(fd, buf, len);
    struct iovec iov = { buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    return nl_recv(s, fd, &m, 0);
}

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    struct nls *s = lookup(fd);
    NEED(readv);
    if (!s)
        return REAL(readv)(fd, iov, n);
    struct msghdr m = { .msg_iov = (struct iovec *) iov, .msg_iovlen = n };
    return nl_recv(s, fd, &m, 0);
}

/* _FORTIFY_SOURCE builds call these when the buffer's size is known. */
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags)
{
    if (len > buflen)
        abort();
    return recv(fd, buf, len, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
                       struct sockaddr *addr, socklen_t *alen)
{
    if (len > buflen)
        abort();
    return recvfrom(fd, buf, len, flags, addr, alen);
}

ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
    if (len > buflen)
        abort();
    return read(fd, buf, len);
}

/* ------------------------------------------------------------ descriptors */

int close(int fd)
{
    NEED(close);
    forget(fd);
    return REAL(close)(fd);
}

int dup(int fd)
{
    NEED(dup);
    int n = REAL(dup)(fd);
    if (n >= 0 && lookup(fd))
        share(fd, n);
    return n;
}

int dup2(int fd, int newfd)
{
    NEED(dup2);
    int n = REAL(dup2)(fd, newfd);
    if (n >= 0 && n != fd)
        share(fd, n);
    return n;
}

int dup3(int fd, int newfd, int flags)
{
    NEED(dup3);
    int n = REAL(dup3)(fd, newfd, flags);
    if (n >= 0)
        share(fd, n);
    return n;
}

static int fcntl_common(int fd, int cmd, void *arg)
{
    NEED(fcntl);
    int r = REAL(fcntl)(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && lookup(fd))
        share(fd, r);
    return r;
}

int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_common(fd, cmd, arg);
}

static void forget_range(unsigned int first, unsigned int last)
{
    pthread_mutex_lock(&table_lock);
    for (unsigned int fd = first; fd <= last && fd < MAX_FDS; fd++)
        forget_locked((int) fd);
    pthread_mutex_unlock(&table_lock);
}

int close_range(unsigned int first, unsigned int last, int flags)
{
    static int (*real_close_range)(unsigned int, unsigned int, int);
    if (!real_close_range)
        real_close_range = resolve("close_range");
    int r = real_close_range(first, last, flags);
    if (r == 0 && !(flags & 4 /* CLOSE_RANGE_CLOEXEC */))
        forget_range(first, last);
    return r;
}

void closefrom(int first)
{
    static void (*real_closefrom)(int);
    if (!real_closefrom)
        real_closefrom = resolve("closefrom");
    if (first >= 0)
        forget_range((unsigned int) first, MAX_FDS - 1);
    real_closefrom(first);
}

/* ------------------------------------------------------------- readiness */

static int queued(int fd)
{
    struct nls *s = lookup(fd);
    return s && __atomic_load_n(&s->head, __ATOMIC_ACQUIRE) != NULL;
}

/* Marks POLLIN on sockets whose queue holds something; returns how many
 * entries that made ready which were not before, or -1 if none is queued. */
static int poll_queued(struct pollfd *fds, nfds_t n, int mark)
{
    int any = -1;
    for (nfds_t i = 0; i < n; i++) {
        if (!(fds[i].events & (POLLIN | POLLRDNORM)) || !queued(fds[i].fd))
            continue;
        if (any < 0)
            any = 0;
        if (mark) {
            if (!fds[i].revents)
                any++;
            fds[i].revents |= fds[i].events & (POLLIN | POLLRDNORM);
        }
    }
    return any;
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    NEED(poll);
    if (poll_queued(fds, n, 0) < 0)
        return REAL(poll)(fds, n, timeout);
    int r = REAL(poll)(fds, n, 0);
    if (r < 0)
        return r;
    return r + poll_queued(fds, n, 1);
}

int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask)
{
    NEED(ppoll);
    if (poll_queued(fds, n, 0) < 0)
        return REAL(ppoll)(fds, n, t, mask);
    struct timespec zero = { 0, 0 };
    int r = REAL(ppoll)(fds, n, &zero, mask);
    if (r < 0)
        return r;
    return r + poll_queued(fds, n, 1);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        abort();
    return poll(fds, n, timeout);
}

int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *t, const sigset_t *mask,
                size_t fdslen)
{
    if (fdslen / sizeof *fds < n)
        abort();
    return ppoll(fds, n, t, mask);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    NEED(epoll_ctl);
    int r = REAL(epoll_ctl)(epfd, op, fd, ev);
    if (r < 0 || !lookup(fd))
        return r;
    pthread_mutex_lock(&table_lock);
    struct epreg **pp = &epregs;
    while (*pp && !((*pp)->epfd == epfd && (*pp)->fd == fd))
        pp = &(*pp)->next;
    if (op == EPOLL_CTL_DEL) {
        if (*pp) {
            struct epreg *d = *pp;
            *pp = d->next;
            free(d);
            epreg_count--;
        }
    } else if (ev) {
        if (!*pp) {
            struct epreg *a = calloc(1, sizeof *a);
            if (a) {
                a->epfd = epfd;
                a->fd = fd;
                a->next = epregs;
                epregs = a;
                epreg_count++;
            }
            pp = a ? &epregs : pp;
        }
        if (*pp)
            (*pp)->ev = *ev;
    }
    pthread_mutex_unlock(&table_lock);
    return r;
}

/* Adds the events of queued sockets registered in epfd to what the kernel
 * reported (without duplicating one it reported already). */
static int epoll_add_queued(int epfd, struct epoll_event *evs, int have, int max)
{
    pthread_mutex_lock(&table_lock);
    for (struct epreg *r = epregs; r && have < max; r = r->next) {
        if (r->epfd != epfd || !(r->ev.events & EPOLLIN) || !queued(r->fd))
            continue;
        int dup_ = 0;
        for (int i = 0; i < have; i++)
            if (evs[i].data.u64 == r->ev.data.u64) {
                evs[i].events |= EPOLLIN;
                dup_ = 1;
            }
        if (!dup_) {
            evs[have].events = EPOLLIN;
            evs[have].data = r->ev.data;
            have++;
        }
    }
    pthread_mutex_unlock(&table_lock);
    return have;
}

static int epoll_any_queued(int epfd)
{
    if (!__atomic_load_n(&epreg_count, __ATOMIC_RELAXED))
        return 0;
    int any = 0;
    pthread_mutex_lock(&table_lock);
    for (struct epreg *r = epregs; r && !any; r = r->next)
        any = r->epfd == epfd && (r->ev.events & EPOLLIN) && queued(r->fd);
    pthread_mutex_unlock(&table_lock);
    return any;
}

int epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    NEED(epoll_wait);
    if (!epoll_any_queued(epfd))
        return REAL(epoll_wait)(epfd, evs, max, timeout);
    int r = REAL(epoll_wait)(epfd, evs, max, 0);
    return r < 0 ? r : epoll_add_queued(epfd, evs, r, max);
}

int epoll_pwait(int epfd, struct epoll_event *evs, int max, int timeout, const sigset_t *mask)
{
    NEED(epoll_pwait);
    if (!epoll_any_queued(epfd))
        return REAL(epoll_pwait)(epfd, evs, max, timeout, mask);
    int r = REAL(epoll_pwait)(epfd, evs, max, 0, mask);
    return r < 0 ? r : epoll_add_queued(epfd, evs, r, max);
}
