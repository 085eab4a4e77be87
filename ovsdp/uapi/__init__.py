"""The wire, described once: numbers, struct layouts and attribute tables.

``from ovsdp import uapi as U`` gives every name of the parts:

- :mod:`.netlink`: linux/netlink.h and linux/genetlink.h;
- :mod:`.openvswitch`: include/uapi/linux/openvswitch.h;
- :mod:`.psample`: include/uapi/linux/psample.h;
- :mod:`.ovsdp`: what ovsdp adds (socket extensions, the dummy port and family).
"""

from .netlink import *  # noqa: F403
from .openvswitch import *  # noqa: F403
from .ovsdp import *  # noqa: F403
from .psample import *  # noqa: F403
