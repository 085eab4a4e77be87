"""The vport types' I/O: netdev, internal, the tunnels, dummy.

:func:`register` is what each net/openvswitch/vport-*.c does at module
init (ovs_vport_ops_register()): it gives a datapath module ovsdp's vport
types.  The core (datapath/) knows a type only by the ops registered.
"""


def register(module):
    """Register every vport type ovsdp has with ``module``."""
    from . import dummy, geneve, gre, internal, netdev, vxlan
    for ops in (netdev.NetdevOps(module), internal.InternalOps(module),
                gre.GreOps(module), vxlan.VxlanOps(module), geneve.GeneveOps(module),
                dummy.DummyOps(module)):
        module.register_vport_ops(ops)
    return module
