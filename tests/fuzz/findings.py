"""What a run finds, and the inputs that led to it."""


class Fatal(Exception):
    """Raised with a fatal finding (dead, hung, probe or sentinel failing, memory)."""

    def __init__(self, finding):
        super().__init__(finding.summary)
        self.finding = finding


class Input:
    """One datagram a fuzzer sent (``extra``: what it was made of, for the report)."""

    __slots__ = ("fuzzer", "iteration", "desc", "data", "extra")

    def __init__(self, fuzzer, iteration, desc, data, extra=None):
        self.fuzzer = fuzzer
        self.iteration = iteration
        self.desc = desc
        self.data = data
        self.extra = extra or {}


class Finding:
    """Something wrong (or, with ``note``, worth knowing); ``signature`` tells repeats."""

    def __init__(self, kind, summary, detail="", fatal=False, inputs=(), signature=None,
                 fuzzer=None, iteration=None, note=False):
        self.note = note             # worth knowing, not a failure (e.g. Linux does the same)
        self.kind = kind
        self.summary = summary
        self.detail = detail
        self.fatal = fatal
        self.inputs = list(inputs)
        self.signature = signature or f"{kind}: {summary}"
        self.fuzzer = fuzzer
        self.iteration = iteration
        self.count = 1

    def render(self, seed, show_inputs=3):
        lines = [f"{'NOTE' if self.note else 'FINDING'} [{self.kind}]"
                 f"{' (fatal)' if self.fatal else ''}: {self.summary}",
                 f"  seed {seed}, fuzzer {self.fuzzer}, iteration {self.iteration}"]
        if self.detail:
            lines += ["  " + ln for ln in self.detail.rstrip().splitlines()]
        shown = self.inputs[-show_inputs:]
        for k, inp in enumerate(shown):
            which = "last input" if k == len(shown) - 1 else f"input -{len(shown) - 1 - k}"
            lines.append(f"  {which}: {inp.fuzzer} #{inp.iteration}: {inp.desc} "
                         f"({len(inp.data)} bytes)")
            for name, v in inp.extra.items():
                if isinstance(v, bytes):
                    lines.append(f"    {name} ({len(v)} bytes): {v[:512].hex()}"
                                 + (" ..." if len(v) > 512 else ""))
                else:
                    lines.append(f"    {name}: {v}")
            lines.append(hexdump(inp.data))
        return "\n".join(lines)


def hexdump(data, limit=2048):
    """The first ``limit`` bytes of ``data`` as indented hex lines of four words."""
    out = []
    for off in range(0, min(len(data), limit), 16):
        chunk = data[off:off + 16]
        words = " ".join(chunk[k:k + 4].hex() for k in range(0, len(chunk), 4))
        out.append(f"    {off:06x}  {words}")
    if len(data) > limit:
        out.append(f"    ... ({len(data)} bytes in all)")
    return "\n".join(out)
