"""A C struct of the uapi, declared once: its name and its fields' names and
formats, in order.

A :class:`Layout` is a :class:`struct.Struct` (``pack``/``unpack`` by
position, as fast as the plain one, for the hot paths) that also knows its
fields by name, so the text format, dpctl and the tests can read and build
it by name (the idea of dpkt's ``__hdr__`` and of the kernel selftests'
``ovs-dpctl.py`` classes with ``fields``)::

    OVS_KEY_TCP = Layout("ovs_key_tcp", "!", ("tcp_src", "H"), ("tcp_dst", "H"))
    OVS_KEY_TCP.pack_fields(tcp_dst=80)            # the others are zero
    OVS_KEY_TCP.as_dict(payload)["tcp_dst"]

A field named None is padding (its format must be ``x``s).
"""

import struct

__all__ = ["Layout"]


class Layout(struct.Struct):
    """struct ``cname`` { fields } with byte order ``order`` (a struct prefix)."""

    def __init__(self, cname, order, *fields):
        super().__init__(order + "".join(f for _n, f in fields))
        self.cname = cname
        self.fields = tuple(n for n, _f in fields if n is not None)
        self.formats = tuple(f for n, f in fields if n is not None)
        for n, f in fields:
            if n is None and f.strip("0123456789") != "x":
                raise ValueError(f"{cname}: a field without a name must be padding, not {f!r}")
        self.index = {n: i for i, n in enumerate(self.fields)}
        self.zero = self.unpack(bytes(self.size))
        if len(self.zero) != len(self.fields):
            raise ValueError(f"{cname}: one value per field (use 6s, not 6B)")

    def __repr__(self):
        return f"Layout({self.cname!r}, {self.format!r}, fields={self.fields})"

    def as_dict(self, buf, offset=0):
        """The struct in ``buf`` as {field name: value}."""
        return dict(zip(self.fields, self.unpack_from(buf, offset), strict=True))

    def pack_fields(self, values=None, **kw):
        """The struct from field values by name (a dict and/or keywords);
        a field not given, or given as None, is zero."""
        if values:
            kw = {**values, **kw}
        unknown = kw.keys() - self.index.keys()
        if unknown:
            raise KeyError(f"{self.cname} has no field {sorted(unknown)[0]!r}")
        return self.pack(*(z if kw.get(n) is None else kw[n]
                           for n, z in zip(self.fields, self.zero, strict=True)))
