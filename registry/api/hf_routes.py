"""The ``hf`` blueprint with every Hugging Face compatible route attached."""

from registry.api import hf, hf_listing, hf_refs
from registry.api.hf_blueprint import bp

__all__ = ["bp", "hf", "hf_listing", "hf_refs"]
