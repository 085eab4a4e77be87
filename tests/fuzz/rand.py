"""Random values the generators share (all from the fuzzer's seeded random.Random)."""


def rmac(r):
    return ":".join(f"{b:02x}" for b in [r.choice([0, 2, 0x0a])] + [r.randrange(256)
                                                                      for _ in range(5)])


def rip4(r):
    return f"{r.choice([10, 192, 172, 1, 224, 255])}.{r.randrange(256)}.{r.randrange(256)}." \
           f"{r.randrange(256)}"


def rip6(r):
    return r.choice(["2001:db8::%x" % r.randrange(1 << 16), "fe80::%x" % r.randrange(1 << 16),
                     "::1", "ff02::1", "::"])


def rbytes(r, n):
    return bytes(r.getrandbits(8) for _ in range(n))


def rint(r, width):
    top = (1 << (8 * width)) - 1
    return r.choice([0, 1, 2, top, top >> 1, (top >> 1) + 1, r.randrange(top + 1),
                     r.randrange(256), 65535, 65536, 4096, 4097, 14, 13]) & top
