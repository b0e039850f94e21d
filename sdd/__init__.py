"""sdd-ray: Selective Diffusion Distillation as a library (``sdd``) and Ray jobs (``pipelines``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sdd-ray")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
