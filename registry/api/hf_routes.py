"""The ``hf`` blueprint with every Hugging Face compatible route attached."""

from registry.api import hf, hf_lfs, hf_listing, hf_refs, hf_upload
from registry.api.hf_blueprint import bp

__all__ = ["bp", "hf", "hf_lfs", "hf_listing", "hf_refs", "hf_upload"]
