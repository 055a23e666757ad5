"""Evaluations a publisher runs at the institution: utility, privacy, diversity, fidelity.

Each one computes numbers from images that never leave the institution; only the numbers
(and thumbnails the institution chooses to publish) go into ``evaluation.json`` and from
there into the model card and its signed manifest.
"""
