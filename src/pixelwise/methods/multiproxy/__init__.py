"""Multi-proxy self-supervision (Larsson Ch. 4): colorization, jigsaw and relative motion on one backbone."""

from pixelwise.methods.multiproxy.model import PROXIES, MultiProxyConfig, MultiProxyModel
from pixelwise.methods.multiproxy.task import MultiProxyTask, proxy_tasks

__all__ = ["PROXIES", "MultiProxyConfig", "MultiProxyModel", "MultiProxyTask", "proxy_tasks"]
