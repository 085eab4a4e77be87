"""The vport types' I/O: netdev, internal, the tunnels, dummy.

:func:`register` is what each net/openvswitch/vport-*.c does at module
init (ovs_vport_ops_register()): it gives a datapath module ovsdp's vport
types.  The core (datapath/) knows a type only by the ops registered.
"""


def register(module):
    """Register every vport type ovsdp has with ``module``."""
    from . import dummy, internal, netdev, tunnel
    for ops in (netdev.NetdevOps(module), internal.InternalOps(module),
                tunnel.GreOps(module), tunnel.VxlanOps(module), tunnel.GeneveOps(module),
                dummy.DummyOps(module)):
        module.register_vport_ops(ops)
    return module
